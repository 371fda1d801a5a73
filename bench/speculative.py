#!/usr/bin/env python3
"""Speculative decoding benchmark for `gannet serve`: output tokens/s with and without speculation.

For each variant (the first is the baseline A; by default `--spec none` and `--spec ngram`) a server
is started, the prompt sets are sent through /v1/completions (raw text: the default model is a base
model; --chat sends them as one user turn to /v1/chat/completions instead) with 1 client (one
request after the other) and with C concurrent clients, greedy (temperature 0; --temperature T
samples, seeded per prompt) with a fixed
--max-tokens, and the server is stopped. Variants alternate within each of --rounds rounds
(A, B, A, B, ...), so both see the same changes of a shared machine; the medians over rounds are
compared (B / A).

Prompt sets (bench/data/speculative/prompts.json, built from the committed files beside it):

  grounded   answers that copy from the input: code edits of a committed Python module, questions
             answered by quoting a committed manual, summaries that quote a committed article
  free       free-form prompts (stories, open questions): little for a prompt-lookup drafter to find

Speculation never changes the output, so the greedy texts of every variant must equal the baseline's
in the same round; mismatches are printed (and the exit status is 1, as for failed requests). With --acceptance, each spec variant also runs every
prompt once through `gannet run --json` (same prompt, same max tokens) for its draft counts:
acceptance rate (accepted / drafted) and tokens per engine step. The server's /metrics is read
before and after each run; the samples whose names contain "spec" are reported when it has any
(counters, `_total`, as summed over the runs; gauges, the cost model's, as the median of what each run
left).

  .venv/bin/python bench/speculative.py -m models/gemma-3-270m-q4_k_m.gguf -t 2 --rounds 3
  .venv/bin/python bench/speculative.py -m models/gemma-3-270m-q4_k_m.gguf --variants none,ngram:4,ngram:8
  .venv/bin/python bench/speculative.py -m models/gemma-3-270m-q4_k_m.gguf --variants none,self,self:4:t8192
"""
import argparse
import asyncio
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx

from serving import Server  # bench/serving.py: `gannet serve` on a free loopback port

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "speculative"


def section_of(text: str, name: str, suffix: str) -> str:
    """One top-level Python function (`def name(` to the next top-level line) or one markdown
    '## name' section (to the next '## ') of a file's text."""
    lines = text.splitlines()
    if suffix == ".py":
        start = next((i for i, l in enumerate(lines) if l.startswith(f"def {name}(")), None)
        is_end = lambda l: l and not l[0].isspace()
    else:
        start = next((i for i, l in enumerate(lines) if l.strip() == f"## {name}"), None)
        is_end = lambda l: l.startswith("## ")
    if start is None:
        raise SystemExit(f"speculative.py: no section {name!r} in the {suffix} file")
    end = next((i for i in range(start + 1, len(lines)) if is_end(lines[i])), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


def load_sets(path: Path, names: list[str], limit: int) -> dict[str, list[dict]]:
    """The prompt sets: for each prompt its id and text ('{input}' replaced by its file or section)."""
    spec = json.loads(path.read_text())
    sets = {}
    for name in names:
        if name not in spec:
            raise SystemExit(f"speculative.py: no prompt set {name!r} in {path}")
        items = []
        for p in spec[name][: limit or None]:
            text = p["prompt"]
            if p.get("file"):
                f = path.parent / p["file"]
                body = f.read_text()
                if p.get("section"):
                    body = section_of(body, p["section"], f.suffix)
                text = text.replace("{input}", body)
            items.append({"id": p["id"], "prompt": text})
        sets[name] = items
    return sets


def parse_variant(text: str) -> dict:
    """'none', 'ngram', 'self' or 'draft=FILE', then ':N' (--spec-max-tokens), and for self
    ':tN' (--spec-self-tokens) and ':lL' (--spec-self-layers), e.g. 'self:6:t16384:l12'."""
    method, *opts = text.split(":")
    if method.startswith("draft="):
        method = "draft:" + method[len("draft="):]
    if not method:
        raise ValueError(text)
    args = ["--spec", method]
    for o in opts:
        if o.isdigit():
            args += ["--spec-max-tokens", o]
        elif o[:1] == "t" and o[1:].isdigit() and method == "self":
            args += ["--spec-self-tokens", o[1:]]
        elif o[:1] == "l" and o[1:].isdigit() and method == "self":
            args += ["--spec-self-layers", o[1:]]
        else:
            raise ValueError(text)
    return {"name": text, "method": method, "server_args": args}


def is_counter(sample: str) -> bool:
    """Whether a /metrics sample is a counter (summed over runs) rather than a gauge (read as is)."""
    return sample.split("{")[0].endswith("_total")


def spec_counters(url: str) -> dict[str, float]:
    """The /metrics samples whose metric name mentions speculation (none when it exposes none)."""
    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$", line)
        if m and "spec" in m.group(1).split("{")[0]:
            out[m.group(1)] = float(m.group(2))
    return out


# Greedy unless --temperature: then each request also carries a seed from its prompt's text, so that
# every variant samples the same output for it (speculation never changes a seeded output).
TEMPERATURE = 0.0
SEED = 0


async def complete(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, chat: bool) -> dict:
    """One streamed completion (raw text, or one user turn through the chat template), greedy or
    seeded: its text, token count and timings (seconds)."""
    body = {"max_tokens": max_tokens, "temperature": TEMPERATURE, "stream": True,
            "stream_options": {"include_usage": True}}
    if TEMPERATURE > 0:
        body["seed"] = (SEED + zlib.crc32(prompt.encode())) % (1 << 31)
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    t0 = time.perf_counter()
    first, parts, usage, error = None, [], None, None
    path = "/v1/chat/completions" if chat else "/v1/completions"
    async with client.stream("POST", url + path, json=body) as r:
        if r.status_code != 200:
            error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
        else:
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for c in chunk.get("choices", []):
                    piece = (c.get("delta") or {}).get("content") if chat else c.get("text")
                    if piece:
                        first = first or time.perf_counter()
                        parts.append(piece)
    end = time.perf_counter()
    n = usage["completion_tokens"] if usage else 0
    return {"error": error, "text": "".join(parts), "completion_tokens": n,
            "prompt_tokens": usage["prompt_tokens"] if usage else 0, "e2e": end - t0,
            "ttft": (first - t0) if first else None,
            "decode_tps": (n - 1) / (end - first) if first and n > 1 and end > first else None}


async def run_set(url: str, prompts: list[dict], concurrency: int, max_tokens: int, chat: bool) -> dict:
    """The set with `concurrency` clients, each sending its next request when its last one ends; at
    least `concurrency` requests (the set repeated as needed), so every client has one."""
    n = max(len(prompts), concurrency)
    queue = [prompts[i % len(prompts)] for i in range(n)]
    results = []

    async def client_loop(client):
        while queue:
            p = queue.pop(0)
            results.append({"id": p["id"], **await complete(client, url, p["prompt"], max_tokens, chat)})

    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["error"] is None]
    out_tokens = sum(r["completion_tokens"] for r in ok)
    decode = [r["decode_tps"] for r in ok if r["decode_tps"]]
    return {"requests": len(results), "failed": len(results) - len(ok),
            "errors": sorted({r["error"] for r in results if r["error"]}), "wall_s": wall,
            "output_tokens": out_tokens, "prompt_tokens": sum(r["prompt_tokens"] for r in ok),
            "output_tps": out_tokens / wall if wall > 0 else 0.0,
            "decode_tps_median": statistics.median(decode) if decode else None,
            "outputs": {r["id"]: r["text"] for r in ok}}


def acceptance(a, variant: dict, sets: dict) -> dict:
    """Draft counts of one spec variant over every prompt, through `gannet run --json`."""
    per_set = {}
    for name, prompts in sets.items():
        steps = drafted = accepted = tokens = 0
        for p in prompts:
            cmd = [a.gannet, "run", "-m", a.model, "-t", str(a.threads), "-n", str(a.max_tokens), "--temp", "0",
                   "--json", *variant["server_args"], "-p", p["prompt"]]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"speculative.py: gannet run failed: {r.stderr.strip()}")
            j = json.loads(r.stdout)
            s = j.get("speculative", {})
            steps += s.get("steps", 0)
            drafted += s.get("draft_tokens", 0)
            accepted += s.get("accepted_tokens", 0)
            tokens += len(j["gen_ids"])
        per_set[name] = {"draft_tokens": drafted, "accepted_tokens": accepted, "spec_steps": steps,
                         "generated_tokens": tokens,
                         "acceptance_rate": accepted / drafted if drafted else None,
                         "accepted_per_generated": accepted / tokens if tokens else None}
    return per_set


def stats(values: list[float]) -> dict:
    v = [x for x in values if x is not None]
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)} if v else {}


def one_round(a, variants, sets, concs, rnd, report) -> None:
    for v in variants:
        server = Server(a.gannet, a.model, a.threads, v["server_args"] + a.server_arg)
        try:
            for name, prompts in sets.items():
                for c in concs:
                    before = spec_counters(server.url)
                    res = asyncio.run(run_set(server.url, prompts, c, a.max_tokens, a.chat))
                    after = spec_counters(server.url)
                    # Counters (_total) over the run; gauges (the cost model's) as the run left them.
                    res["spec_counters"] = {k: after[k] - before.get(k, 0) if is_counter(k) else after[k]
                                            for k in after}
                    report["runs"].append({"round": rnd, "variant": v["name"], "set": name, "concurrency": c, **res})
                    print(f"round {rnd} {v['name']:>10} {name:>8} c={c:<3} {res['output_tps']:7.2f} tok/s "
                          f"({res['output_tokens']} tokens, {res['wall_s']:.1f} s, {res['failed']} failed)",
                          file=sys.stderr)
        finally:
            server.stop()


def compare(report: dict, variants: list[dict], sets: dict, concs: list[int]) -> list[dict]:
    """Per set and concurrency: each variant's median tokens/s over rounds, the ratio to the
    baseline's, and the greedy outputs that differ from the baseline's in the same round."""
    base = variants[0]["name"]
    rows = []
    runs = report["runs"]
    for name in sets:
        for c in concs:
            pick = lambda v: [r for r in runs if r["variant"] == v and r["set"] == name and r["concurrency"] == c]
            base_runs = pick(base)
            base_tps = stats([r["output_tps"] for r in base_runs])
            for v in variants:
                mine = pick(v["name"])
                tps = stats([r["output_tps"] for r in mine])
                mismatches = []
                for r in mine:
                    ref = next((b for b in base_runs if b["round"] == r["round"]), None)
                    if ref is None or v["name"] == base:
                        continue
                    for pid, text in r["outputs"].items():
                        if pid in ref["outputs"] and ref["outputs"][pid] != text:
                            mismatches.append({"round": r["round"], "id": pid, "baseline": ref["outputs"][pid],
                                               "variant": text})
                rows.append({"set": name, "concurrency": c, "variant": v["name"], "output_tps": tps,
                             "decode_tps_median": stats([r["decode_tps_median"] for r in mine]).get("median"),
                             "ratio": (tps["median"] / base_tps["median"]) if tps and base_tps.get("median") else None,
                             "compared_outputs": sum(len(r["outputs"]) for r in mine) if v["name"] != base else 0,
                             "mismatches": mismatches,
                             "failed": sum(r["failed"] for r in mine),
                             "spec_counters": {k: (sum if is_counter(k) else statistics.median)(
                                                   [r["spec_counters"][k] for r in mine if k in r["spec_counters"]])
                                               for r in mine for k in r["spec_counters"]}})
    return rows


def fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_report(report: dict) -> None:
    print(f"# gannet serve, speculative decoding: {report['model']}, {report['threads']} threads, "
          f"max_tokens {report['max_tokens']}, {report['rounds']} rounds, load average {report['loadavg']}")
    print("\n| set | clients | variant | out tok/s median (min-max) | 1-client decode tok/s | B/A | "
          "identical outputs |")
    print("|---|---|---|---|---|---|---|")
    for r in report["comparison"]:
        t = r["output_tps"]
        same = "baseline" if not r["compared_outputs"] else \
            f"{r['compared_outputs'] - len(r['mismatches'])}/{r['compared_outputs']}"
        dec = fmt(r["decode_tps_median"]) if r["concurrency"] == 1 else "-"
        print(f"| {r['set']} | {r['concurrency']} | {r['variant']} | {fmt(t.get('median'))} "
              f"({fmt(t.get('min'))}-{fmt(t.get('max'))}) | {dec} | {fmt(r['ratio'])} | {same} |")
    for r in report["comparison"]:
        if r["spec_counters"]:
            print(f"\n/metrics, {r['set']} {r['concurrency']} clients {r['variant']}: {r['spec_counters']}")
    for name, acc in report.get("acceptance", {}).items():
        for s, x in acc.items():
            print(f"\n{name}, {s} (gannet run, 1 sequence): {x['accepted_tokens']} of {x['draft_tokens']} draft "
                  f"tokens accepted ({fmt(x['acceptance_rate'])}); {x['generated_tokens']} tokens, "
                  f"{x['spec_steps']} speculative steps; accepted / generated {fmt(x['accepted_per_generated'])}")
    for r in report["comparison"]:
        for m in r["mismatches"][:3]:
            print(f"\nMISMATCH {r['set']} {r['concurrency']} clients {r['variant']} round {m['round']} "
                  f"{m['id']}:\n  baseline: {m['baseline'][:300]!r}\n  variant:  {m['variant'][:300]!r}")
    print(f"\nreproduce: {report['command']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True, help="model file (the script starts gannet serve)")
    ap.add_argument("--gannet", default=str(ROOT / "build" / "bin" / "gannet"))
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--variants", default="none,ngram",
                    help="comma-separated: none, ngram, self or draft=FILE, each optionally :N (N draft tokens at "
                         "most); self also :tN (head tokens) and :lL (layers); the first is A")
    ap.add_argument("--sets", default="grounded,free", help="comma-separated prompt sets")
    ap.add_argument("--prompts", type=Path, default=DATA / "prompts.json")
    ap.add_argument("--num-prompts", type=int, default=0, help="first N prompts of each set (0: all)")
    ap.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="sample at this temperature, seeded per prompt (default 0: greedy); the "
                         "free-form case where drafts rarely match")
    ap.add_argument("--seed", type=int, default=0, help="added to each prompt's seed (--temperature)")
    ap.add_argument("--chat", action="store_true",
                    help="send each prompt as one user turn to /v1/chat/completions (an instruction model with a "
                         "chat template) instead of as raw text to /v1/completions")
    ap.add_argument("--server-arg", action="append", default=[], help="extra gannet serve argument (every variant)")
    ap.add_argument("--acceptance", action="store_true",
                    help="also run each prompt through `gannet run --json` per spec variant for its draft counts")
    ap.add_argument("--outputs", action="store_true", help="keep every output text in the --json report")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    global TEMPERATURE, SEED
    TEMPERATURE, SEED = a.temperature, a.seed
    try:
        variants = [parse_variant(x) for x in a.variants.split(",") if x]
        concs = [int(x) for x in a.concurrency.split(",") if x]
    except ValueError:
        ap.error("--variants takes none, ngram or ngram:N; --concurrency comma-separated numbers")
    if len(variants) < 2 or not concs or min(concs) < 1 or a.rounds < 1 or a.max_tokens < 1:
        ap.error("give at least two variants, client counts of 1 or more, --rounds and --max-tokens of 1 or more")
    if a.acceptance and a.chat:
        ap.error("--acceptance runs raw prompts through gannet run; it does not go with --chat")
    sets = load_sets(a.prompts, [x for x in a.sets.split(",") if x], a.num_prompts)

    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    report = {"command": shlex.join([python, *sys.argv]), "model": a.model, "threads": a.threads,
              "max_tokens": a.max_tokens, "rounds": a.rounds, "variants": [v["name"] for v in variants],
              "sets": {k: len(v) for k, v in sets.items()}, "concurrency": concs, "runs": []}
    load = [os.getloadavg()[0]]
    t0 = time.time()
    for rnd in range(1, a.rounds + 1):
        one_round(a, variants, sets, concs, rnd, report)
        load.append(os.getloadavg()[0])
    report["wall_s"] = time.time() - t0
    report["loadavg"] = f"{min(load):.1f}-{max(load):.1f}"
    if a.acceptance:
        report["acceptance"] = {v["name"]: acceptance(a, v, sets) for v in variants if v["method"] != "none"}
    report["comparison"] = compare(report, variants, sets, concs)
    report["identical"] = all(not r["mismatches"] for r in report["comparison"])
    if not a.outputs:
        for r in report["runs"]:
            r.pop("outputs")
    if a.json:
        print(json.dumps(report))
    else:
        print_report(report)
    # A speculative variant whose output differs from the baseline's is a bug, not a figure.
    return 0 if report["identical"] and not any(r["failed"] for r in report["comparison"]) else 1


if __name__ == "__main__":
    sys.exit(main())
