#!/usr/bin/env python3
"""Golden renderings of chat templates, with Python's jinja2 configured as Hugging Face transformers
renders chat templates (apply_chat_template(..., tokenize=False)): ImmutableSandboxedEnvironment,
trim_blocks=True, lstrip_blocks=True, the loopcontrols extension, a tojson filter calling
json.dumps(ensure_ascii=False), raise_exception and strftime_now globals.

Renders every template (models/templates/*.jinja from tools/fetch_templates.py, plus the fixtures in
tests/fixtures/chat_templates/templates/) over tests/fixtures/chat_templates/conversations.json and
writes tests/fixtures/chat_templates/golden.json. strftime_now formats the fixed time NOW (UTC) so the
output is reproducible; `tools` is passed only where a conversation has tools (undefined otherwise).

Usage: python tools/fetch_templates.py && python tools/chat_template_golden.py
"""
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_templates import TEMPLATES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"
NOW = 1741964966  # 2025-03-14 15:09:26 UTC
# Special tokens the models' tokenizers define (bos_token / eos_token of tokenizer_config.json).
TOKENS = {
    "google-gemma": ("<bos>", "<eos>"),
    "meta-llama": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen": ("", "<|im_end|>"),
    "mistralai": ("<s>", "</s>"),
    "Mistral": ("<s>", "</s>"),
    "microsoft-Phi": ("<s>", "<|endoftext|>"),
    "HuggingFaceTB": ("", "<|im_end|>"),
    "deepseek-ai": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "ibm-granite": ("<|end_of_text|>", "<|end_of_text|>"),
}


def make_env() -> ImmutableSandboxedEnvironment:
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.fromtimestamp(NOW, tz=timezone.utc).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def tokens_for(name: str):
    for prefix, toks in TOKENS.items():
        if name.startswith(prefix):
            return toks
    raise KeyError(f"no special tokens recorded for {name}")


def main() -> int:
    conversations = json.loads((FIXTURES / "conversations.json").read_text(encoding="utf-8"))
    sources = {name: ROOT / "models" / "templates" / f"{name}.jinja" for name in TEMPLATES}
    for path in sorted((FIXTURES / "templates").glob("*.jinja")):
        sources[path.stem] = path
    env = make_env()
    out = {"generator": "tools/chat_template_golden.py", "jinja2_version": jinja2.__version__, "now": NOW,
           "templates": []}
    for name, path in sources.items():
        if not path.is_file():
            print(f"error: {path} missing (run tools/fetch_templates.py)", file=sys.stderr)
            return 1
        source = path.read_text(encoding="utf-8")
        template = env.from_string(source)
        bos, eos = tokens_for(name)
        entry = {"name": name, "file": str(path.relative_to(ROOT)), "bos_token": bos, "eos_token": eos,
                 "results": []}
        for conv in conversations:
            kwargs = dict(messages=conv["messages"], add_generation_prompt=conv["add_generation_prompt"],
                          bos_token=bos, eos_token=eos, **conv.get("extra_variables", {}))
            if "tools" in conv:
                kwargs["tools"] = conv["tools"]
            result = {"conversation": conv["name"]}
            try:
                result["output"] = template.render(**kwargs)
            except TemplateError as e:  # raise_exception, undefined values, sandbox refusals
                result["error"] = {"type": type(e).__name__, "message": str(e),
                                   "raised_by_template": type(e) is TemplateError}
            except Exception as e:  # noqa: BLE001 (TypeError etc. from the template's operations)
                result["error"] = {"type": type(e).__name__, "message": str(e), "raised_by_template": False}
            entry["results"].append(result)
        out["templates"].append(entry)
    path = FIXTURES / "golden.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n = sum(len(t["results"]) for t in out["templates"])
    errors = sum("error" in r for t in out["templates"] for r in t["results"])
    print(f"{path}: {len(out['templates'])} templates x {len(conversations)} conversations = {n} cases "
          f"({errors} expected errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
