#!/usr/bin/env python3
"""Golden outputs of llama.cpp (through llama-cpp-python) for the default model.

For each prompt: the token ids (llama.cpp tokenize, add_bos=True, special=True, so `<start_of_turn>` and
friends become single tokens), the 32-token greedy continuation (argmax of the raw logits at each step, ties
to the lowest id, no sampler, no repeat penalty, EOS not special-cased: all 32 steps run), and the top-20
logits at four points: the last prompt position (predicting generated token 1) and the positions of
generated tokens 8, 16 and 31 (predicting tokens 9, 17 and 32).

The prompt is decoded in one batch, then each generated token alone (the KV-cache path), with flash
attention off and the default f16 KV cache; n_threads 1 (--threads). Those options are recorded in the JSON.

Usage: python tools/llamacpp_golden.py [--model PATH] [--out PATH]
Needs llama-cpp-python (tools/requirements-reference.txt). Default output:
tests/fixtures/golden/gemma3_270m.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N_GEN = 32
TOP_K = 20
CHECKPOINTS = [0, 8, 16, 31]  # generated tokens already fed when the logits are read

_LONG = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based inks and a wooden press adapted from those used to make wine. Before "
    "him, books in Europe were copied by hand, usually in monasteries, and a single Bible could take a "
    "scribe more than a year. Printing changed the economics of knowledge: within fifty years of the first "
    "printed Bible, presses were at work in more than two hundred European cities, and millions of books "
    "had been produced. Scholars could compare identical copies of a text, which made it easier to "
    "correct errors and to build on the work of others. Pamphlets spread religious and political ideas "
    "quickly, and the Reformation owed much of its speed to cheap print. Governments and churches soon "
    "tried to control what could be printed, with licences, censorship and lists of forbidden books. "
    "Literacy rose slowly at first and then quickly, as schools used printed primers and newspapers "
    "appeared in the seventeenth century. Later inventions, such as the steam-powered rotary press in the "
    "nineteenth century, lowered costs again and made daily newspapers affordable for workers. Historians "
    "still debate how much of the scientific revolution depended on print, but few doubt that the ability "
    "to share exact copies of diagrams, tables and observations helped astronomers, anatomists and "
    "engineers work together across great distances. In summary, the main effects of the printing press "
    "were"
)

PROMPTS = [
    ("fact_capital", "The capital of France is"),
    ("fact_science", "Water boils at a temperature of"),
    ("fact_history", "The first person to walk on the Moon was"),
    ("fact_bio", "Photosynthesis is the process by which plants"),
    ("code_python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("code_c", "#include <stdio.h>\n\nint main(void) {\n    printf("),
    ("code_sql", "SELECT name, COUNT(*) AS n\nFROM orders\n"),
    ("list_fruits", "Here is a list of fruits:\n1. Apple\n2. Banana\n3."),
    ("list_steps", "How to make tea:\n- Boil water\n-"),
    ("chat_simple", "<start_of_turn>user\nWhat is the tallest mountain in the world?<end_of_turn>\n"
                    "<start_of_turn>model\n"),
    ("chat_code", "<start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n<start_of_turn>model\n"),
    ("chat_multiturn", "<start_of_turn>user\nHi! My name is Ada.<end_of_turn>\n<start_of_turn>model\n"
                       "Hello Ada! How can I help you today?<end_of_turn>\n<start_of_turn>user\n"
                       "What is my name?<end_of_turn>\n<start_of_turn>model\n"),
    ("german", "Die Hauptstadt von Deutschland ist"),
    ("french", "Il était une fois, dans un petit village,"),
    ("japanese", "日本の首都は"),
    ("chinese", "中国的长城是"),
    ("russian", "Москва — это"),
    ("emoji", "I love pizza 🍕 and"),
    ("numbers_count", "1, 2, 3, 4, 5, 6,"),
    ("numbers_math", "12 + 35 = 47\n23 + 41 = 64\n17 + 28 ="),
    ("numbers_year", "In 1969, the population of the world was about"),
    ("repeated", "the cat sat on the mat. " * 12 + "the cat"),
    ("long_300", _LONG),
    ("whitespace", "Name:\tAlice\nAge:\t30\n\nName:\tBob\nAge:"),
    ("single_word", "Hello"),
    ("json", "{\"name\": \"gannet\", \"type\": \"inference engine\", \"language\":"),
]


def top_k(logits: np.ndarray, k: int):
    idx = np.argsort(-logits, kind="stable")[:k]
    return [int(i) for i in idx], [float(f"{logits[i]:.6g}") for i in idx]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "golden" / "gemma3_270m.json")
    # 1 thread by default: results do not depend on it, and spinning worker threads on a busy machine
    # slow llama.cpp down by orders of magnitude.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    n_ctx, n_batch = 2048, 512
    llm = Llama(str(args.model), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=args.threads,
                n_threads_batch=args.threads, logits_all=False, flash_attn=False, n_gpu_layers=0,
                seed=0, verbose=False)
    n_vocab = llm.n_vocab()

    def last_logits() -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32).copy()

    cases = []
    for name, text in PROMPTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if len(ids) > n_batch:
            raise SystemExit(f"prompt {name} has {len(ids)} tokens > n_batch {n_batch}")
        llm.reset()
        llm._ctx.kv_cache_clear()
        llm.eval(ids)
        gen, tops, margins = [], [], []
        for step in range(N_GEN):
            logits = last_logits()
            if step in CHECKPOINTS:
                tid, tval = top_k(logits, TOP_K)
                tops.append({"n_generated": step, "position": len(ids) + step - 1, "ids": tid, "logits": tval})
            nxt = int(np.argmax(logits))
            gen.append(nxt)
            # How decided llama.cpp's choice was: top-1 minus top-2 logit. Implementations whose
            # rounding differs (activation quantization, summation order) can pick either side of
            # a near tie, and from there on they continue different texts.
            second = np.partition(logits, -2)[-2]
            margins.append(float(f"{float(logits[nxt] - second):.4g}"))
            if step + 1 < N_GEN:
                llm.eval([nxt])
        text_out = llm.detokenize(gen).decode("utf-8", errors="replace")
        cases.append({"name": name, "prompt": text, "prompt_ids": ids, "greedy": gen,
                      "greedy_text": text_out, "margins": margins, "top": tops})
        print(f"{name}: {len(ids)} prompt tokens -> {text_out[:60]!r}", flush=True)

    doc = {
        "model": args.model.name,
        "generator": "tools/llamacpp_golden.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        "machine": platform.machine(),
        "options": {
            "tokenize_add_bos": True, "tokenize_special": True,
            "n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_batch, "n_threads": args.threads,
            "flash_attn": False, "kv_cache_type": "f16", "n_gpu_layers": 0,
            "prompt_decode": "one batch", "generation_decode": "one token per decode (KV cache)",
            "sampling": "argmax of raw logits, ties to lowest id; no repeat penalty; EOS not special-cased",
            "n_generate": N_GEN, "top_k": TOP_K,
            "margins": "per generated token: llama.cpp's top-1 minus top-2 logit at that step",
            "checkpoints": ("top lists the logits after n_generated generated tokens were fed; "
                            "position = index of the last fed token; they predict greedy[n_generated]"),
        },
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB, {len(cases)} prompts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
