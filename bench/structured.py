#!/usr/bin/env python3
"""Structured-output benchmark for `gannet serve`: decode speed with a JSON-schema constraint
against the same requests unconstrained, and the time to first token for a large schema.

One server is started. In each of --rounds rounds, for each client count of --concurrency, the
prompt set is sent through /v1/completions (greedy, exactly --max-tokens tokens each: ignore_eos,
so both variants decode the same number of tokens in batches of the same size) twice:
unconstrained and with `response_format: {"type": "json_schema", ...}` (the order alternates
between rounds, so both see the same changes of a shared machine). Per run: output tokens/s over
the wall time (all clients together) and the median per-request decode tokens/s (tokens after the
first / time after the first). Medians over rounds are compared (constrained / free). A last,
untimed pass sends every prompt constrained and ending where the model ends it: each output that
ends must parse and validate against the schema (`jsonschema`); an invalid one is printed and the
exit status is 1.

Large schema: each round also sends one request whose schema has 50 properties (10 objects of 5
fields of mixed types), with property names new to the server (so its grammar is compiled for that
request), and the same prompt unconstrained; the TTFT difference is the cost of compiling the
grammar and computing the first mask.

  .venv/bin/python bench/structured.py -m models/gemma-3-270m-q4_k_m.gguf -t 2 --rounds 3
"""
import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import httpx
import jsonschema

from serving import Server  # bench/serving.py: `gannet serve` on a free loopback port

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"

# Raw-text prompts whose natural continuation is JSON (the default model is a base model).
PROMPTS = [
    "A list of forty common English words and their lengths, as JSON:\n",
    "Inventory of a small bookshop (title and number of copies), as a JSON array:\n",
    "The planets of the solar system with their order from the sun, in JSON:\n",
    "Word frequencies in a short poem about the sea, as JSON records:\n",
    "Ingredients for a vegetable soup with quantities in grams, as JSON:\n",
    "Names of twelve rivers and the number of countries each flows through, in JSON:\n",
    "Tags of a blog post and how often each appears, as a JSON list:\n",
    "The colours of a rainbow with a number for each, as JSON:\n",
]


def large_schema(tag: str) -> dict:
    """50 properties: 10 objects of 5 fields (string, integer, number, boolean, enum)."""
    props = {}
    for i in range(10):
        props[f"{tag}_group{i}"] = {
            "type": "object",
            "properties": {
                f"name{i}": {"type": "string", "maxLength": 24},
                f"count{i}": {"type": "integer", "minimum": 0},
                f"score{i}": {"type": "number"},
                f"active{i}": {"type": "boolean"},
                f"kind{i}": {"enum": ["alpha", "beta", "gamma"]},
            },
            "required": [f"name{i}", f"count{i}", f"score{i}", f"active{i}", f"kind{i}"],
            "additionalProperties": False,
        }
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


async def complete(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int,
                   schema: dict | None, fixed_length: bool = True) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "ignore_eos": fixed_length}
    if schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "out", "schema": schema, "strict": True}}
    t0 = time.perf_counter()
    first, parts, usage, error = None, [], None, None
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
        else:
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
                for c in chunk.get("choices", []):
                    if c.get("text"):
                        first = first or time.perf_counter()
                        parts.append(c["text"])
    end = time.perf_counter()
    n = usage["completion_tokens"] if usage else 0
    return {"error": error, "text": "".join(parts), "tokens": n, "ttft": (first - t0) if first else None,
            "decode_tps": (n - 1) / (end - first) if first and n > 1 and end > first else None}


def invalid_reason(text: str, schema: dict) -> str | None:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError) as e:
        return str(e).splitlines()[0][:160]
    return None


async def run_set(url: str, concurrency: int, max_tokens: int, schema: dict | None) -> dict:
    queue = [PROMPTS[i % len(PROMPTS)] for i in range(max(len(PROMPTS), concurrency))]
    results = []

    async def client_loop(client):
        while queue:
            results.append(await complete(client, url, queue.pop(0), max_tokens, schema))

    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["error"] is None]
    decode = [r["decode_tps"] for r in ok if r["decode_tps"]]
    return {"failed": len(results) - len(ok), "errors": sorted({r["error"] for r in results if r["error"]}),
            "output_tps": sum(r["tokens"] for r in ok) / wall, "decode_tps": statistics.median(decode) if decode else 0}


async def validate(url: str, schema: dict, max_tokens: int) -> dict:
    """Every prompt once, constrained, ending where the model ends it: each output that ended
    before max_tokens must parse and validate (one cut by the limit is an unfinished document)."""
    async with httpx.AsyncClient(timeout=None) as client:
        results = [await complete(client, url, p, max_tokens, schema, fixed_length=False) for p in PROMPTS]
    done = [r for r in results if r["error"] is None and r["tokens"] < max_tokens]
    invalid = [(r["text"][:80], why) for r in done for why in [invalid_reason(r["text"], schema)] if why]
    return {"validated": len(done), "invalid": invalid, "failed": sum(1 for r in results if r["error"])}


async def large_schema_ttft(url: str, tag: str) -> dict:
    prompt = "A configuration record with ten groups of settings, as JSON:\n"
    async with httpx.AsyncClient(timeout=None) as client:
        free = await complete(client, url, prompt, 2, None)
        constrained = await complete(client, url, prompt, 2, large_schema(tag))
    return {"free": free["ttft"], "constrained": constrained["ttft"], "error": constrained["error"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--gannet", default=str(ROOT / "build" / "bin" / "gannet"))
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--schema", default=str(DATA / "schema_word_list.json"), help="JSON Schema file")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--validate-tokens", type=int, default=256,
                    help="max_tokens of the validation pass (outputs end where the model ends them)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra gannet serve argument")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    schema = json.loads(Path(a.schema).read_text())
    concs = [int(c) for c in a.concurrency.split(",") if c]
    runs = {(c, k): [] for c in concs for k in ("free", "schema")}
    ttft, invalid, failed = [], [], 0
    server = Server(a.gannet, a.model, a.threads, ["--parallel", str(max(concs))] + a.server_arg)
    try:
        for rnd in range(a.rounds):
            for c in concs:
                order = ("free", "schema") if rnd % 2 == 0 else ("schema", "free")
                for kind in order:
                    r = asyncio.run(run_set(server.url, c, a.max_tokens, schema if kind == "schema" else None))
                    runs[(c, kind)].append(r)
                    failed += r["failed"]
                    if r["errors"]:
                        print(f"errors ({kind}, {c} clients): {r['errors']}", file=sys.stderr)
            ttft.append(asyncio.run(large_schema_ttft(server.url, f"r{rnd}_{time.time_ns()}")))
        checked = asyncio.run(validate(server.url, schema, a.validate_tokens))
        invalid, failed = checked["invalid"], failed + checked["failed"]
    finally:
        server.stop()
    med = lambda xs: statistics.median(xs) if xs else 0.0
    rows = []
    for c in concs:
        f, s = runs[(c, "free")], runs[(c, "schema")]
        out_f, out_s = med([r["output_tps"] for r in f]), med([r["output_tps"] for r in s])
        dec_f, dec_s = med([r["decode_tps"] for r in f]), med([r["decode_tps"] for r in s])
        rows.append({"clients": c, "output_tps_free": out_f, "output_tps_schema": out_s,
                     "output_ratio": out_s / out_f if out_f else 0, "decode_tps_free": dec_f,
                     "decode_tps_schema": dec_s, "decode_ratio": dec_s / dec_f if dec_f else 0})
    big = {"ttft_free_ms": 1e3 * med([t["free"] for t in ttft if t["free"]]),
           "ttft_schema_ms": 1e3 * med([t["constrained"] for t in ttft if t["constrained"]]),
           "errors": [t["error"] for t in ttft if t["error"]]}
    report = {"command": shlex.join(sys.argv), "rounds": a.rounds, "max_tokens": a.max_tokens,
              "schema": a.schema, "rows": rows, "large_schema": big, "validated": checked["validated"],
              "invalid": invalid, "failed": failed}
    if a.json:
        print(json.dumps(report))
    else:
        print(f"# {report['command']}")
        print("| clients | output t/s free | output t/s schema | ratio | decode t/s free (median) "
              "| decode t/s schema | ratio |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['clients']} | {r['output_tps_free']:.1f} | {r['output_tps_schema']:.1f} | "
                  f"**{r['output_ratio']:.2f}** | {r['decode_tps_free']:.1f} | {r['decode_tps_schema']:.1f} | "
                  f"{r['decode_ratio']:.2f} |")
        print(f"outputs validated against the schema: {report['validated']} of {len(PROMPTS)} "
              f"(the others reached --validate-tokens), {len(invalid)} invalid")
        print(f"50-property schema, first request: TTFT {big['ttft_schema_ms']:.0f} ms constrained vs "
              f"{big['ttft_free_ms']:.0f} ms free (difference: grammar compile + first mask)")
        for text, why in invalid:
            print(f"INVALID: {why}: {text!r}")
    return 1 if invalid or failed or big["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
