#!/usr/bin/env python3
"""Interleaved A/B of two gannet variants: two binaries (e.g. before and after a change) or two
sets of `gannet bench` flags (e.g. the graph fusion passes on and off), run alternately
(A, B, A, B, ...) for several rounds so that a shared machine's drifting speed and bandwidth hit
both alike. Prints the medians [min-max] of pp and tg tokens/s per variant, the ratio B/A of the
medians, and the command that reproduces the table.

  bench/ab_gannet.py -m models/gemma-3-270m-q4_k_m.gguf --b-args=--no-fuse --rounds 5
  bench/ab_gannet.py -m MODEL --a-bin old/bin/gannet --b-bin build/bin/gannet
  bench/ab_gannet.py -m MODEL --a-bin old/bin/gannet --b-bin build/bin/gannet --command run
  bench/ab_gannet.py -m MODEL --a-env GANNET_ISA=avx2 --b-env GANNET_ISA=avx512

--a-env / --b-env NAME=VALUE (repeatable) set environment variables of one variant, e.g. the
kernel target (GANNET_ISA: scalar, avx2, avx512) to compare two targets of one build.

--command run times `gannet run --temp 0 --json` instead (a prompt of about -p tokens, -n tokens
generated): the tokens/s it reports, the wall-clock seconds of the whole command, and whether
both variants generated the same tokens.
"""
import time
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(binary, model, args, extra, env):
    cmd = [binary, "bench", "-m", model, "-p", str(args.n_prompt), "-n", str(args.n_gen), "-r", "1", "--json"]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    cmd += extra
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"ab_gannet: {' '.join(map(shlex.quote, cmd))} failed:\n{r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# About 10 tokens a sentence on common vocabularies; repeated up to the requested prompt length.
PROMPT_SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def run(binary, model, args, extra, env):
    prompt = PROMPT_SENTENCE * max(1, args.n_prompt // 12)
    cmd = [binary, "run", "-m", model, "-p", prompt, "-n", str(args.n_gen), "--temp", "0", "--json"]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    cmd += extra
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"ab_gannet: {binary} run failed:\n{r.stderr.strip()}")
    j = json.loads(r.stdout.strip().splitlines()[-1])
    t = j["timings"]
    return {"pp_tps": t["prompt_tps"], "tg_tps": t["gen_tps"], "wall_s": wall, "gen_ids": j["gen_ids"]}


def shown(path):
    """A binary's path as a reader would type it: relative to the current folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", required=True, help="GGUF model (repeatable)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=0, help="threads (default: gannet's, one per core)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--a-bin", default=str(ROOT / "build" / "bin" / "gannet"), help="gannet binary of variant A")
    ap.add_argument("--b-bin", default=None, help="gannet binary of variant B (default: A's)")
    ap.add_argument("--a-args", default="", help="extra `gannet bench` flags of variant A (one string)")
    ap.add_argument("--b-args", default="", help="extra `gannet bench` flags of variant B (one string)")
    ap.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable of variant A (repeatable), e.g. GANNET_ISA=avx2")
    ap.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable of variant B (repeatable)")
    ap.add_argument("--command", choices=("bench", "run"), default="bench",
                    help="time `gannet bench` (default) or `gannet run --temp 0 --json`")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()
    if args.rounds < 1 or args.n_prompt < 1 or args.n_gen < 1:
        sys.exit("ab_gannet: --rounds, -p and -n must be at least 1")
    b_bin = args.b_bin or args.a_bin
    envs = {}
    for name, pairs in (("A", args.a_env), ("B", args.b_env)):
        envs[name] = dict(os.environ)
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                sys.exit(f"ab_gannet: --{name.lower()}-env wants NAME=VALUE, got {pair!r}")
            envs[name][key] = value
    variants = {"A": (args.a_bin, shlex.split(args.a_args), args.a_env),
                "B": (b_bin, shlex.split(args.b_args), args.b_env)}
    if variants["A"] == variants["B"]:
        sys.exit("ab_gannet: A and B are the same (give --b-bin, --a-args/--b-args or --a-env/--b-env)")

    report = {"n_prompt": args.n_prompt, "n_gen": args.n_gen, "threads": args.threads, "rounds": args.rounds,
              "variants": {k: {"binary": shown(b), "args": a, "env": e} for k, (b, a, e) in variants.items()},
              "command": " ".join(shlex.quote(x) for x in ["python3", *sys.argv]), "models": []}
    for model in args.model:
        runs = {"A": [], "B": []}
        for rnd in range(args.rounds):
            for name in ("A", "B") if rnd % 2 == 0 else ("B", "A"):  # alternate who goes first
                binary, extra, _ = variants[name]
                runs[name].append((run if args.command == "run" else bench)(binary, model, args, extra, envs[name]))
            print(f"  {Path(model).name} round {rnd + 1}/{args.rounds}: "
                  f"pp A {runs['A'][-1]['pp_tps']:.1f} B {runs['B'][-1]['pp_tps']:.1f} | "
                  f"tg A {runs['A'][-1]['tg_tps']:.2f} B {runs['B'][-1]['tg_tps']:.2f} t/s", file=sys.stderr)
        entry = {"model": model}
        keys = ("pp_tps", "tg_tps", "wall_s") if args.command == "run" else ("pp_tps", "tg_tps")
        for name in ("A", "B"):
            entry[name] = {k: spread([r[k] for r in runs[name]]) for k in keys}
        entry["ratio_b_over_a"] = {k: entry["B"][k]["median"] / entry["A"][k]["median"] for k in keys}
        if args.command == "run":
            entry["same_tokens"] = all(r["gen_ids"] == runs["A"][0]["gen_ids"] for r in runs["A"] + runs["B"])
        report["models"].append(entry)

    if args.json:
        print(json.dumps(report))
        return
    print(f"# gannet A/B ({args.rounds} interleaved rounds, medians [min-max])\n")
    for name, (binary, extra, env) in variants.items():
        print(f"- {name}: `{' '.join([*env, shown(binary), args.command, *extra])}`")
    for m in report["models"]:
        print(f"\n## {m['model']}\n\n| test | A t/s | B t/s | B/A |\n|---|---|---|---|")
        tests = [("pp_tps", f"pp{args.n_prompt}"), ("tg_tps", f"tg{args.n_gen}")]
        if args.command == "run":
            tests.append(("wall_s", "wall (s, not t/s)"))
        for key, test in tests:
            a, b = m["A"][key], m["B"][key]
            print(f"| {test} | {a['median']:.2f} [{a['min']:.2f}-{a['max']:.2f}] | "
                  f"{b['median']:.2f} [{b['min']:.2f}-{b['max']:.2f}] | {m['ratio_b_over_a'][key]:.3f} |")
        if "same_tokens" in m:
            print(f"\nsame generated tokens in every run of A and B: {m['same_tokens']}")
    print(f"\nreproduce: {report['command']}")


if __name__ == "__main__":
    main()
