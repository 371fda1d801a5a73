#!/usr/bin/env python3
"""Serving benchmark for `gannet serve`, in the manner of vLLM's benchmark_serving.

Starts the server (or uses --url), sends streaming /v1/completions requests and measures, per
request, the time to the first token (TTFT), the gaps between tokens (ITL), the time per output
token after the first (TPOT) and the end-to-end latency; per run, request and output-token
throughput. Workloads:

  --rates R1,R2,..     Poisson arrivals at each rate (requests/s; "inf" sends all at once)
  --concurrency C1,..  C clients, each sending its next request when the previous one ends; with
                       --rounds R the list runs R times, its order reversed every other round, and
                       the throughput ratio (the most clients over 1) is the median of the rounds'
  --multiturn          conversations of --turns turns sharing one long system prompt, run with the
                       prefix cache on and off (two server starts); TTFT per turn
  --long-prompt        inter-token latency of running streams while a 2,000-token prompt arrives
                       (chunked prefill keeps the decodes going)
  --decode-only        with --rates/--concurrency: short prompts and fixed-length outputs, so the
                       runs measure how decoding alone scales with the number of clients
  --burst N            N short requests at once beside a running stream (--rounds times): how fast
                       the engine takes them in (TTFT p50/max) and the burst's output tokens/s

Prompts come from bench/data/serving_prompts.json, a synthetic set with log-normal prompt and
output lengths written by `--write-prompts` (seeded; committed so every run uses the same set).
Each --rates / --concurrency run opens its prompts with a line of its own ("Run K."), so that no
run finds the prompts of an earlier one in the server's prefix cache: a run after another of the
same prompts would otherwise skip their prefill (the table's "cached" column counts the prompt
tokens a run found there).

  .venv/bin/python bench/serving.py -m models/gemma-3-270m-q4_k_m.gguf --concurrency 1,16
  .venv/bin/python bench/serving.py -m models/gemma-3-270m-q4_k_m.gguf --multiturn --long-prompt
"""
import argparse
import asyncio
import json
import math
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "bench" / "data" / "serving_prompts.json"
WORDS = ("time person year way day thing man world life hand part child eye woman place work week case "
         "point government company number group problem fact river mountain city garden music letter "
         "window story question answer system program market color energy paper money table night "
         "morning friend family school student teacher country history water light sound field island "
         "ocean forest bridge road station engine signal memory language picture machine process").split()


def write_prompts(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        n_in = int(min(1024, max(16, rng.lognormvariate(math.log(150), 0.7))))
        n_out = int(min(160, max(8, rng.lognormvariate(math.log(48), 0.5))))
        # About 1.3 tokens per word for these words; the server reports exact counts.
        words = [rng.choice(WORDS) for _ in range(int(n_in / 1.3))]
        items.append({"prompt": "Continue this list: " + " ".join(words), "max_tokens": n_out})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seed": seed, "prompts": items}, indent=0) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `gannet serve` process on a free loopback port."""

    def __init__(self, gannet: str, model: str, threads: int, extra: list[str]):
        self.port = free_port()
        self.cmd = [gannet, "serve", "-m", model, "--port", str(self.port), "-t", str(threads)] + extra
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serving.py: the server exited ({self.proc.returncode}): {shlex.join(self.cmd)}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("serving.py: the server did not become healthy within 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def one_request(client: httpx.AsyncClient, url: str, body: dict, times: list | None = None) -> dict:
    """Streams one completion; returns its timings (seconds) and token counts. `times`, if given,
    receives each token's arrival time as it comes (kept when the task is cancelled)."""
    body = dict(body, stream=True, stream_options={"include_usage": True})
    t0 = time.perf_counter()
    times = [] if times is None else times
    usage, error = None, None
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            error = f"HTTP {r.status_code}"
            await r.aread()
        else:
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for c in chunk.get("choices", []):
                    if c.get("text"):
                        times.append(time.perf_counter())
    end = time.perf_counter()
    out = {"error": error, "e2e": end - t0, "ttft": (times[0] - t0) if times else None,
           "itl": [b - a for a, b in zip(times, times[1:])],
           "prompt_tokens": usage["prompt_tokens"] if usage else 0,
           "completion_tokens": usage["completion_tokens"] if usage else 0,
           "cached_tokens": ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens", 0)}
    if out["completion_tokens"] > 1 and out["ttft"] is not None:
        out["tpot"] = (end - times[0]) / (out["completion_tokens"] - 1)
    return out


def for_run(prompts: list[dict], run: int) -> list[dict]:
    """The prompts with a first line of run `run`'s own, so that they share no prefix with any other
    run's (the same prompts sent again would be found in the prefix cache)."""
    return [dict(p, prompt=f"Run {run}.\n" + p["prompt"]) for p in prompts]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summarize(results: list[dict], wall: float) -> dict:
    ok = [r for r in results if r["error"] is None]
    ms = lambda xs: [x * 1000 for x in xs if x is not None]
    ttft, tpot = ms([r["ttft"] for r in ok]), ms([r.get("tpot") for r in ok])
    itl, e2e = ms([x for r in ok for x in r["itl"]]), ms([r["e2e"] for r in ok])
    out_tokens = sum(r["completion_tokens"] for r in ok)
    return {"requests": len(results), "failed": len(results) - len(ok), "duration_s": wall,
            "request_throughput": len(ok) / wall, "output_token_throughput": out_tokens / wall,
            "prompt_tokens": sum(r["prompt_tokens"] for r in ok), "output_tokens": out_tokens,
            "cached_tokens": sum(r["cached_tokens"] for r in ok),
            **{f"{name}_ms_{stat}": f(vals) for name, vals in
               (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e))
               for stat, f in (("p50", lambda v: pct(v, 50)), ("p99", lambda v: pct(v, 99)),
                               ("mean", lambda v: statistics.fmean(v) if v else None))}}


async def run_rate(url: str, prompts: list[dict], rate: float, seed: int) -> dict:
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000)) as client:
        tasks, t0 = [], time.perf_counter()
        for p in prompts:
            tasks.append(asyncio.create_task(one_request(client, url, p)))
            if math.isfinite(rate):
                await asyncio.sleep(rng.expovariate(rate))
        results = await asyncio.gather(*tasks)
    return summarize(results, time.perf_counter() - t0)


async def run_concurrency(url: str, prompts: list[dict], concurrency: int) -> dict:
    queue = list(prompts)
    results = []

    async def client_loop(client):
        while queue:
            results.append(await one_request(client, url, queue.pop(0)))

    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return summarize(results, time.perf_counter() - t0)


async def run_multiturn(url: str, n_convs: int, turns: int, seed: int) -> dict:
    """Conversations sharing a ~600-token system prompt; each turn resends the whole history."""
    rng = random.Random(seed)
    system = "You are a careful assistant. Rules: " + " ".join(rng.choice(WORDS) for _ in range(450))
    per_turn = [[] for _ in range(turns)]
    cached = [[] for _ in range(turns)]
    async with httpx.AsyncClient(timeout=None) as client:
        for c in range(n_convs):
            history = system
            for t in range(turns):
                history += f"\nUser {c}.{t}: " + " ".join(rng.choice(WORDS) for _ in range(40)) + "\nAssistant:"
                r = await one_request(client, url, {"prompt": history, "max_tokens": 24, "temperature": 0})
                if r["error"] is None:
                    per_turn[t].append(r["ttft"] * 1000)
                    cached[t].append(r["cached_tokens"])
                # The next turn's prompt extends this one (the reply text is not needed for timing).
                history += " " + " ".join(rng.choice(WORDS) for _ in range(18))
    return {"ttft_ms_median_by_turn": [statistics.median(v) if v else None for v in per_turn],
            "cached_tokens_mean_by_turn": [statistics.fmean(v) if v else None for v in cached]}


async def run_long_prompt(url: str, n_streams: int, seed: int) -> dict:
    """ITL of n running streams before and while a 2,000-token prompt is prefilled.

    The streams' token times are split at the moments the long prompt is sent and produces its
    first token: ITLs before it are the streams' usual pace (median), ITLs whose gap overlaps the
    prefill are what a long prompt does to them (p99 of those against the usual median)."""
    rng = random.Random(seed)
    long_prompt = " ".join(rng.choice(WORDS) for _ in range(2000))  # one token per word: ~2,000 tokens
    marks = {}
    token_times = [[] for _ in range(n_streams)]
    async with httpx.AsyncClient(timeout=None) as client:
        # The streams run until cancelled (ignore_eos, a large max_tokens), so every one of them is
        # decoding for the whole prefill of the long prompt.
        streams = [asyncio.create_task(one_request(client, url, {
            "prompt": "Count: " + " ".join(rng.choice(WORDS) for _ in range(20)), "max_tokens": 3000,
            "temperature": 0, "ignore_eos": True}, times=token_times[i])) for i in range(n_streams)]
        # Their usual pace first: every stream has produced a few tokens (however slow the machine).
        deadline = time.perf_counter() + 300
        while min(len(t) for t in token_times) < 12 and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        marks["sent"] = time.perf_counter()
        big = await one_request(client, url, {"prompt": long_prompt, "max_tokens": 4, "temperature": 0})
        marks["first_token"] = marks["sent"] + (big["ttft"] or 0)
        await asyncio.sleep(0.5)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    before, during = [], []
    for times in token_times:
        for a, b in zip(times, times[1:]):
            if b <= marks["sent"]:
                before.append((b - a) * 1000)
            elif a < marks["first_token"]:
                during.append((b - a) * 1000)
    p50 = pct(before, 50)
    p99 = pct(during, 99)
    return {"streams": n_streams, "long_prompt_tokens": big["prompt_tokens"],
            "long_prompt_ttft_ms": (big["ttft"] or 0) * 1000, "itl_ms_p50_before": p50,
            "itl_ms_p50_during": pct(during, 50), "itl_ms_p99_during": p99,
            "itl_during_samples": len(during),
            "itl_p99_during_over_p50": (p99 / p50) if p50 and p99 else None}


async def run_burst(url: str, n: int, max_tokens: int) -> dict:
    """One stream decodes; then n short requests arrive at once. Their prompts join the running batch
    as the engine's prefill pacing allows: TTFT p50 and max, and the burst's wall time from the
    first request sent to the last token (its output tokens over that time)."""
    first_times: list = []
    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000)) as client:
        running = asyncio.create_task(one_request(client, url, {
            "prompt": "Tell story number 0:", "max_tokens": max_tokens + 64, "ignore_eos": True, "temperature": 0},
            times=first_times))
        await asyncio.sleep(0.1)
        before = len(first_times)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one_request(client, url, {
            "prompt": f"Tell story number {i + 1}:", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0})
            for i in range(n)))
        wall = time.perf_counter() - t0
        first = await running
    ttft = [r["ttft"] * 1000 for r in results if r["error"] is None and r["ttft"] is not None]
    out_tokens = sum(r["completion_tokens"] for r in results)
    return {"requests": n, "failed": n - len(ttft), "ttft_ms_p50": pct(ttft, 50),
            "ttft_ms_max": max(ttft) if ttft else None, "wall_ms": wall * 1000, "output_tokens": out_tokens,
            "output_token_throughput": out_tokens / wall,
            # The stream the burst arrived beside: whether it ran to the end, and how many tokens it
            # had streamed when the burst was sent (0: it was not decoding yet).
            "running_stream": {"error": first["error"], "completion_tokens": first["completion_tokens"],
                               "tokens_before_burst": before}}


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="model file (the script starts gannet serve)")
    ap.add_argument("--url", help="use a running server instead")
    ap.add_argument("--gannet", default=str(ROOT / "build" / "bin" / "gannet"))
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--server-arg", action="append", default=[], help="extra gannet serve argument")
    ap.add_argument("--rates", default="", help="comma-separated request rates (req/s); inf = all at once")
    ap.add_argument("--concurrency", default="", help="comma-separated client counts")
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=0, help="cap every request's max_tokens (0: the set's)")
    ap.add_argument("--multiturn", action="store_true")
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--long-prompt", action="store_true")
    ap.add_argument("--burst", type=int, default=0, metavar="N",
                    help="N short requests at once beside a running stream (see above)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="--burst: bursts measured (one small burst warms up first; default 3); --concurrency: "
                         "times the list runs, alternating its order (default 1)")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--decode-only", action="store_true",
                    help="--rates/--concurrency with short prompts (~8 tokens) and a fixed output length "
                         "(--max-tokens, default 128; ignore_eos): how decoding alone scales with the batch")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--write-prompts", type=int, metavar="N", help="write N synthetic prompts and exit")
    a = ap.parse_args()

    if a.write_prompts:
        write_prompts(PROMPTS, a.write_prompts, a.seed)
        print(PROMPTS)
        return 0
    if not a.model and not a.url:
        ap.error("give -m MODEL or --url URL")
    try:
        rates = [float(x) for x in a.rates.split(",") if x]
        concs = [int(x) for x in a.concurrency.split(",") if x]
    except ValueError:
        ap.error("--rates and --concurrency take comma-separated numbers")
    if not (rates or concs or a.multiturn or a.long_prompt or a.burst):
        concs = [1, 16]
    prompts = json.loads(PROMPTS.read_text())["prompts"][: a.num_prompts]
    if a.decode_only:
        prompts = [{"prompt": f"Tell story number {i}:", "max_tokens": a.max_tokens or 128, "ignore_eos": True}
                   for i in range(a.num_prompts)]
    elif a.max_tokens:
        prompts = [dict(p, max_tokens=min(p["max_tokens"], a.max_tokens)) for p in prompts]
    prompts = [dict(p, temperature=0) for p in prompts]

    report = {"command": shlex.join([sys.executable, *sys.argv]), "model": a.model or a.url,
              "threads": a.threads, "runs": []}
    server = Server(a.gannet, a.model, a.threads, a.server_arg) if a.model else None
    url = server.url if server else a.url.rstrip("/")
    try:
        run_index = 0
        for r in rates:
            run_index += 1
            res = asyncio.run(run_rate(url, for_run(prompts, run_index), r, a.seed))
            report["runs"].append({"mode": "rate", "rate": r if math.isfinite(r) else "inf", **res})
        conc_rounds = a.rounds or 1
        for rnd in range(conc_rounds if concs else 0):
            for c in (concs if rnd % 2 == 0 else concs[::-1]):
                run_index += 1
                res = asyncio.run(run_concurrency(url, for_run(prompts, run_index), c))
                report["runs"].append({"mode": "concurrency", "concurrency": c, "round": rnd, **res})
        if a.long_prompt:
            report["long_prompt"] = asyncio.run(run_long_prompt(url, a.streams, a.seed))
        if a.burst:
            asyncio.run(run_burst(url, 4, 8))
            report["bursts"] = [asyncio.run(run_burst(url, a.burst, a.max_tokens or 64))
                                for _ in range(a.rounds or 3)]
        if a.multiturn:
            report["multiturn_prefix_cache_on"] = asyncio.run(run_multiturn(url, a.conversations, a.turns, a.seed))
    finally:
        if server:
            server.stop()
    if a.multiturn and a.model:
        off = Server(a.gannet, a.model, a.threads, a.server_arg + ["--no-prefix-cache"])
        try:
            report["multiturn_prefix_cache_off"] = asyncio.run(run_multiturn(off.url, a.conversations, a.turns, a.seed))
        finally:
            off.stop()
        on_t = report["multiturn_prefix_cache_on"]["ttft_ms_median_by_turn"][-1]
        off_t = report["multiturn_prefix_cache_off"]["ttft_ms_median_by_turn"][-1]
        report["multiturn_last_turn_ttft_off_over_on"] = (off_t / on_t) if on_t and off_t else None
    # Per round, the most clients' output throughput over one client's (the same round's runs).
    ratios, top = [], None
    for rnd in sorted({r["round"] for r in report["runs"] if r["mode"] == "concurrency"}):
        conc = {r["concurrency"]: r for r in report["runs"] if r["mode"] == "concurrency" and r["round"] == rnd}
        if 1 in conc and len(conc) > 1 and conc[1]["output_token_throughput"] > 0:
            top = max(conc)
            ratios.append(conc[top]["output_token_throughput"] / conc[1]["output_token_throughput"])
    if ratios:
        report["throughput_ratio"] = {"concurrency": top, "over_single": statistics.median(ratios),
                                      "over_single_by_round": ratios}

    if a.json:
        print(json.dumps(report))
        return 0
    print(f"# gannet serve: {report['model']}, {a.threads} threads")
    if report["runs"]:
        print("\n| mode | req | failed | req/s | out tok/s | TTFT p50/p99 ms | TPOT p50/p99 ms | ITL p50/p99 ms "
              "| prompt tokens (cached) |")
        print("|---|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        mode = f"rate {r['rate']}" if r["mode"] == "rate" else f"concurrency {r['concurrency']}"
        if r["mode"] == "concurrency" and (a.rounds or 1) > 1:
            mode += f" (round {r['round'] + 1})"
        print(f"| {mode} | {r['requests']} | {r['failed']} | {fmt(r['request_throughput'])} | "
              f"{fmt(r['output_token_throughput'])} | {fmt(r['ttft_ms_p50'])}/{fmt(r['ttft_ms_p99'])} | "
              f"{fmt(r['tpot_ms_p50'])}/{fmt(r['tpot_ms_p99'])} | {fmt(r['itl_ms_p50'])}/{fmt(r['itl_ms_p99'])} | "
              f"{r['prompt_tokens']} ({r['cached_tokens']}) |")
    if "throughput_ratio" in report:
        t = report["throughput_ratio"]
        rounds = t["over_single_by_round"]
        each = f" (median of {len(rounds)} rounds: {', '.join(f'{x:.2f}' for x in rounds)})" if len(rounds) > 1 else ""
        print(f"\noutput-token throughput at {t['concurrency']} clients / 1 client: {t['over_single']:.2f}x{each}")
    for b in report.get("bursts", []):
        print(f"\nburst of {b['requests']} requests beside a running stream: {b['failed']} failed, TTFT p50 "
              f"{fmt(b['ttft_ms_p50'])} ms, max {fmt(b['ttft_ms_max'])} ms; the burst took {fmt(b['wall_ms'])} ms, "
              f"{fmt(b['output_token_throughput'])} output tok/s (the running stream had "
              f"{b['running_stream']['tokens_before_burst']} tokens when it came)")
    if "long_prompt" in report:
        lp = report["long_prompt"]
        print(f"\nlong prompt ({lp['long_prompt_tokens']} tokens, TTFT {fmt(lp['long_prompt_ttft_ms'])} ms) beside "
              f"{lp['streams']} streams: ITL median before it {fmt(lp['itl_ms_p50_before'])} ms; while it is prefilled "
              f"p50 {fmt(lp['itl_ms_p50_during'])} ms, p99 {fmt(lp['itl_ms_p99_during'])} ms "
              f"({lp['itl_during_samples']} gaps); p99 during / median before: {fmt(lp['itl_p99_during_over_p50'])}")
    for key in ("multiturn_prefix_cache_on", "multiturn_prefix_cache_off"):
        if key in report:
            print(f"\n{key}: TTFT median by turn (ms) {[fmt(x) for x in report[key]['ttft_ms_median_by_turn']]}, "
                  f"cached tokens {[fmt(x) for x in report[key]['cached_tokens_mean_by_turn']]}")
    if report.get("multiturn_last_turn_ttft_off_over_on"):
        print(f"last turn TTFT, prefix cache off / on: {report['multiturn_last_turn_ttft_off_over_on']:.2f}x")
    print(f"\nreproduce: {report['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
