#!/usr/bin/env python3
"""How prompt-lookup drafts fare by the length of their match: for every prompt of a set, the greedy
output of `gannet run --spec none`, then a replay of a single-chain prompt lookup over prompt + output
(the longest earlier occurrence of the text's last n tokens, n = 4 down to 1, its continuation of up
to --depth tokens as the draft), counting per n how often the draft's first token was rejected and
how many tokens were accepted. This is the evidence behind the speculative control's draft classes
(src/engine/spec_control.h).

  .venv/bin/python bench/ngram_matches.py -m models/gemma-3-270m-q4_k_m.gguf --sets grounded,free
"""
import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speculative import DATA, load_sets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def replay(prompt: list[int], gen: list[int], depth: int, stats: dict) -> None:
    toks = prompt + gen
    t = len(prompt) + 1
    while t < len(toks):
        ctx = toks[:t]
        found = None
        for n in range(4, 0, -1):
            suffix = ctx[-n:]
            for i in range(len(ctx) - n - 1, -1, -1):  # the most recent earlier occurrence
                if ctx[i:i + n] == suffix:
                    found = (n, i + n)
                    break
            if found:
                break
        if not found:
            stats["none"] += 1
            t += 1
            continue
        n, start = found
        draft = toks[start:start + depth]
        acc = 0
        while acc < len(draft) and t + acc < len(toks) and draft[acc] == toks[t + acc]:
            acc += 1
        s = stats.setdefault(n, {"drafts": 0, "first_rejected": 0, "accepted": 0})
        s["drafts"] += 1
        s["first_rejected"] += acc == 0
        s["accepted"] += acc
        t += acc + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--gannet", default=str(ROOT / "build" / "bin" / "gannet"))
    ap.add_argument("--sets", default="grounded,free")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--depth", type=int, default=16, help="draft tokens offered at most")
    a = ap.parse_args()
    sets = load_sets(DATA / "prompts.json", a.sets.split(","), 0)
    for name, prompts in sets.items():
        stats: dict = {"none": 0}
        for p in prompts:
            r = subprocess.run([a.gannet, "run", "-m", a.model, "-p", p["prompt"], "-n", str(a.max_tokens),
                                "--temp", "0", "--spec", "none", "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"ngram_matches.py: gannet run failed: {r.stderr.strip()}")
            j = json.loads(r.stdout)
            replay(j["prompt_ids"], j["gen_ids"], a.depth, stats)
        print(f"## {name} ({len(prompts)} prompts, {a.max_tokens} tokens, drafts of up to {a.depth})")
        print("| match n | drafts | first token rejected | mean accepted |")
        print("|---|---|---|---|")
        for n in sorted(k for k in stats if k != "none"):
            s = stats[n]
            print(f"| {n} | {s['drafts']} | {s['first_rejected'] / s['drafts']:.0%} | "
                  f"{s['accepted'] / s['drafts']:.2f} |")
        print(f"positions with no earlier match: {stats['none']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
