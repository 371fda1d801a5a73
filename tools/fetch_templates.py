#!/usr/bin/env python3
"""Fetch chat templates (Jinja) of instruction-tuned models into models/templates/.

llama.cpp keeps the `tokenizer.chat_template` of many models as models/templates/*.jinja; they
ship inside the llama-cpp-python source distribution on PyPI, which tools/fetch_vocabs.py already
downloads (cached in models/vocab/.pip/). This script extracts the files listed in TEMPLATES and
checks each against the sha256 recorded below. Files already present and verified are reused.

Templates of models that are in no PyPI package (Gemma 3, SmolLM2) are small test fixtures in
tests/fixtures/chat_templates/templates/ instead (their sources are in the README there).

Usage: python tools/fetch_templates.py [--out DIR]
Prints the template directory on the last line.
"""
import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_vocabs import MEMBER_DIR, ROOT, fetch_sdist, sha256_of  # noqa: E402

TEMPLATES = {
    "meta-llama-Llama-3.1-8B-Instruct": "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "meta-llama-Llama-3.2-3B-Instruct": "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4",
    "meta-llama-Llama-3.3-70B-Instruct": "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "Qwen-Qwen2.5-7B-Instruct": "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
    "mistralai-Mistral-Nemo-Instruct-2407": "e4676cb56dffea7782fd3e2b577cfaf1e123537e6ef49b3ec7caa6c095c62272",
    "Mistral-Small-3.2-24B-Instruct-2506": "5b8f31f11198696548d544dbe424a3c1ef244d00a475f4e1bffb351fda085608",
    "microsoft-Phi-3.5-mini-instruct": "78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90",
    "google-gemma-2-2b-it": "ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6",
    "HuggingFaceTB-SmolLM3-3B": "19eacf64569032f07644ea92c8e2a87af06ee7008147557302c31e474912ca97",
    "Qwen-Qwen3-0.6B": "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": "dd2675619a64a449cdcdd2b93e605a0a50764cee41e344f244752bc93643936c",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "bbe594884b44d740667ee65a70bc8d333a565eab3d63ea59f291ea73ada84ba6",
    "Qwen-QwQ-32B": "5ed15374ce53e19a7798710736a2c9fe41c79f7385e8421a2080d6575a80ef1b",
    "ibm-granite-granite-3.3-2B-Instruct": "3c71df5f659987462c882bf9e295b597dc19902467a7312ea382c5896681bc02",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "templates")
    ap.add_argument("--pip-cache", type=Path, default=ROOT / "models" / "vocab",
                    help="folder whose .pip/ holds the llama-cpp-python sdist (shared with fetch_vocabs.py)")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    missing = [n for n, sha in TEMPLATES.items()
               if not ((out / f"{n}.jinja").is_file() and sha256_of(out / f"{n}.jinja") == sha)]
    if missing:
        try:
            sdist = fetch_sdist(args.pip_cache)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        with tarfile.open(sdist) as tar:
            for name in missing:
                member = f"{MEMBER_DIR}/templates/{name}.jinja"
                src = tar.extractfile(member)
                if src is None:
                    print(f"error: {member} not in {sdist}", file=sys.stderr)
                    return 1
                data = src.read()
                if hashlib.sha256(data).hexdigest() != TEMPLATES[name]:
                    print(f"error: {member} does not match sha256 {TEMPLATES[name]}", file=sys.stderr)
                    return 1
                (out / f"{name}.jinja").write_bytes(data)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
