#!/usr/bin/env python3
"""gannet against llama.cpp on the same GGUF files, side by side, in one run.

Each round runs `gannet bench --json -r 1` and then the same measurement in llama.cpp (through
llama-cpp-python's low-level API, in a child Python process), so both sides see the same state of
a shared machine; after --rounds rounds it prints medians (and min/max) of prompt processing (pp:
the prompt as one batch) and token generation (tg: one token at a time after it), the ratio
gannet/llama.cpp, peak RSS, and beside tg the bytes every generated token reads and the memory
read bandwidth gannet measured in the same round.

Why alternate: on a host whose memory bandwidth changes from minute to minute, two sets of runs
taken one after the other compare two machines, not two engines. Interleaved rounds put both
engines through the same changes; medians drop the rounds a change happened in.

llama.cpp side: the model is loaded with default parameters (mmap); the context has
n_threads = n_threads_batch = -t, n_ctx = p + n, n_batch = max(p, 1) (the prompt is one llama_decode),
n_ubatch and flash attention at llama.cpp's defaults. A warm-up (one pp and n tg decodes) runs first,
then the KV cache is cleared and the measured pp and tg follow. Times are wall-clock around the
llama_decode calls, each followed by llama_synchronize, the same way gannet bench times its
Evaluate calls; llama.cpp's own counters (llama_perf_context) are reported beside them as a check.
Peak RSS is the child's resource.getrusage maximum (it includes the Python interpreter, about 30 MB).

Usage:
  .venv/bin/python bench/compare_llamacpp.py -m models/gemma-3-270m-q4_k_m.gguf -p 512 -n 128 --rounds 5
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = "models/gemma-3-270m-q4_k_m.gguf"
CHILD_FLAG = "--llamacpp-child"


# --------------------------------------------------------------------------------------------
# llama.cpp child: one pp + tg measurement, one JSON line on stdout.


def llamacpp_child(spec):
    import ctypes
    import random
    import resource

    import llama_cpp as L

    log_lines = []

    @L.llama_log_callback
    def on_log(level, text, user_data):  # keep llama.cpp's log for error messages only
        log_lines.append(text.decode("utf-8", "replace"))

    L.llama_log_set(on_log, ctypes.c_void_p(0))
    L.llama_backend_init()
    path, n_prompt, n_gen, threads = spec["model"], spec["n_prompt"], spec["n_gen"], spec["threads"]

    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    if not model:
        raise SystemExit("llama.cpp cannot load %s: %s" % (path, "".join(log_lines[-5:]).strip()))
    cparams = L.llama_context_default_params()
    cparams.n_ctx = n_prompt + n_gen
    cparams.n_batch = max(n_prompt, 1)
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.no_perf = False
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit("llama.cpp cannot create a context: %s" % "".join(log_lines[-5:]).strip())

    # Ordinary (non-control) tokens from a fixed seed, BOS first when the vocabulary has one.
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    rng = random.Random(1234)

    def draw():
        for _ in range(1000):
            t = rng.randrange(n_vocab)
            if not L.llama_vocab_is_control(vocab, t):
                return t
        return t

    bos = L.llama_vocab_bos(vocab)
    prompt = [draw() for _ in range(n_prompt)]
    if bos >= 0:
        prompt[0] = bos
    gen = [draw() for _ in range(n_gen)]

    batch = L.llama_batch_init(max(n_prompt, 1), 0, 1)

    def decode(tokens, pos0):
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise SystemExit("llama_decode returned %d: %s" % (rc, "".join(log_lines[-5:]).strip()))
        L.llama_synchronize(ctx)

    memory = L.llama_get_memory(ctx)
    result = {}
    for rep in range(2):  # 0: warm-up
        L.llama_memory_clear(memory, True)
        L.llama_perf_context_reset(ctx)
        t0 = time.perf_counter()
        decode(prompt, 0)
        t1 = time.perf_counter()
        for i, t in enumerate(gen):
            decode([t], n_prompt + i)
        t2 = time.perf_counter()
        perf = L.llama_perf_context(ctx)
        if rep == 1:
            result = {
                "pp_tps": n_prompt / (t1 - t0),
                "tg_tps": n_gen / (t2 - t1) if n_gen > 0 else 0.0,
                "perf_pp_tps": perf.n_p_eval * 1000.0 / perf.t_p_eval_ms if perf.t_p_eval_ms > 0 else 0.0,
                "perf_tg_tps": perf.n_eval * 1000.0 / perf.t_eval_ms if perf.t_eval_ms > 0 else 0.0,
                "perf_n_p_eval": perf.n_p_eval,
                "perf_n_eval": perf.n_eval,
            }
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["version"] = "llama-cpp-python %s, llama.cpp %s" % (
        L.__version__, L.llama_version().decode() if hasattr(L, "llama_version") else "?")
    result["system_info"] = L.llama_print_system_info().decode().strip()
    print(json.dumps(result))


# --------------------------------------------------------------------------------------------
# Parent: alternate the two engines, summarize.


def run_gannet(args, model):
    cmd = [args.gannet, "bench", "-m", model, "-p", str(args.n_prompt), "-n", str(args.n_gen),
           "-t", str(args.threads), "-r", "1", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("gannet bench failed (%s): %s" % (shlex.join(cmd), r.stderr.strip()))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("gannet bench printed no JSON: %r" % r.stdout[-500:])


def run_llamacpp(args, model):
    spec = {"model": model, "n_prompt": args.n_prompt, "n_gen": args.n_gen, "threads": args.threads}
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, json.dumps(spec)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("llama.cpp run failed: %s" % (r.stderr.strip()[-2000:] or r.stdout.strip()[-2000:]))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("llama.cpp child printed no JSON: %r" % r.stdout[-500:])


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def machine_description():
    model_name = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return {"cpu": model_name, "cores": os.cpu_count(), "load_average_at_end": load,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def bench_model(args, model):
    rounds = []
    for i in range(args.rounds):
        g = run_gannet(args, model)
        l = run_llamacpp(args, model)
        rounds.append({"gannet": g, "llamacpp": l})
        print("  %s round %d/%d: pp gannet %.1f llama.cpp %.1f t/s | tg gannet %.2f llama.cpp %.2f t/s"
              " | %.1f GB/s measured" % (os.path.basename(model), i + 1, args.rounds, g["pp_tps"],
                                          l["pp_tps"], g["tg_tps"], l["tg_tps"], g["membw_gbps"]),
              file=sys.stderr, flush=True)
    gs = [r["gannet"] for r in rounds]
    ls = [r["llamacpp"] for r in rounds]
    bytes_per_token = gs[-1]["bytes_per_token"]
    out = {"model": model, "n_prompt": args.n_prompt, "n_gen": args.n_gen, "threads": args.threads,
           "rounds": args.rounds}
    for side, runs in (("gannet", gs), ("llamacpp", ls)):
        out[side] = {
            "pp_tps": spread([r["pp_tps"] for r in runs]),
            "tg_tps": spread([r["tg_tps"] for r in runs]),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
            # Bytes/token are gannet's count for this file; the same weights are read by both engines.
            "effective_gbps": spread([bytes_per_token * r["tg_tps"] / 1e9 for r in runs]),
            # Share of the bandwidth gannet measured in the same round (before and after its tg).
            "roofline_share": spread([bytes_per_token * r["tg_tps"] / 1e9 / g["membw_gbps"]
                                      for r, g in zip(runs, gs)]),
        }
    out["llamacpp"]["perf_counter_tps"] = {"pp": spread([r["perf_pp_tps"] for r in ls]),
                                           "tg": spread([r["perf_tg_tps"] for r in ls])}
    out["ratio"] = {k: out["gannet"][k]["median"] / out["llamacpp"][k]["median"]
                    if out["llamacpp"][k]["median"] > 0 else None for k in ("pp_tps", "tg_tps")}
    out["bytes_per_token"] = bytes_per_token
    out["bytes_per_token_weights"] = gs[-1]["bytes_per_token_weights"]
    out["bytes_per_token_kv"] = gs[-1]["bytes_per_token_kv"]
    out["membw_gbps"] = spread([r["membw_gbps"] for r in gs])
    out["rounds_raw"] = rounds
    return out


def print_table(report):
    p, n = report["n_prompt"], report["n_gen"]
    print("# gannet vs llama.cpp (%d threads, %d interleaved rounds, medians [min-max])" % (
        report["threads"], report["rounds"]))
    print()
    for m in report["models"]:
        g, l = m["gannet"], m["llamacpp"]
        print("## %s" % m["model"])
        print()
        print("| test | gannet t/s | llama.cpp t/s | gannet/llama.cpp |")
        print("|---|---|---|---|")
        for key, name in (("pp_tps", "pp%d" % p), ("tg_tps", "tg%d" % n)):
            ratio = m["ratio"][key]
            print("| %s | %.2f [%.2f-%.2f] | %.2f [%.2f-%.2f] | %s |" % (
                name, g[key]["median"], g[key]["min"], g[key]["max"], l[key]["median"], l[key]["min"],
                l[key]["max"], "%.2f" % ratio if ratio is not None else "n/a"))
        print()
        print("| tg%d | bytes/token | effective GB/s | measured GB/s | roofline share | peak RSS |" % n)
        print("|---|---|---|---|---|---|")
        for side, name in (("gannet", "gannet"), ("llamacpp", "llama.cpp")):
            s = m[side]
            print("| %s | %.1f MB | %.2f | %.2f [%.2f-%.2f] | %.0f%% | %.1f MiB |" % (
                name, m["bytes_per_token"] / 1e6, s["effective_gbps"]["median"], m["membw_gbps"]["median"],
                m["membw_gbps"]["min"], m["membw_gbps"]["max"], 100 * s["roofline_share"]["median"],
                s["peak_rss_bytes"] / 1048576.0))
        print()
        print("bytes/token: %.1f MB weights + %.2f MB KV cache; llama.cpp's own counters: pp %.2f, tg %.2f t/s"
              % (m["bytes_per_token_weights"] / 1e6, m["bytes_per_token_kv"] / 1e6,
                 l["perf_counter_tps"]["pp"]["median"], l["perf_counter_tps"]["tg"]["median"]))
        print()
    mach = report["machine"]
    print("machine: %s, %s cores; load average at the end: %s; %s" % (
        mach["cpu"], mach["cores"], mach["load_average_at_end"], mach["date_utc"]))
    print("llama.cpp: %s" % report["llamacpp_build"]["version"])
    print("llama.cpp system info: %s" % report["llamacpp_build"]["system_info"])
    print("gannet: %s" % report["gannet_binary"])
    print("reproduce: %s" % report["command"])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        llamacpp_child(json.loads(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", action="append", help="GGUF model (repeatable); default " + DEFAULT_MODEL)
    ap.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens, one batch (default 512)")
    ap.add_argument("-n", "--n-gen", type=int, default=128, help="tokens generated one at a time (default 128)")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both engines (default: one per core)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--gannet", default="build/bin/gannet", help="gannet binary (default build/bin/gannet)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()
    if args.n_prompt < 1 or args.n_gen < 1 or args.threads < 1 or args.rounds < 1:
        ap.error("-p, -n, -t and --rounds must be at least 1")
    models = args.model or [DEFAULT_MODEL]
    for m in models:
        if not os.path.isfile(m):
            ap.error("no such model file: %s" % m)
    if not (os.path.isfile(args.gannet) and os.access(args.gannet, os.X_OK)):
        ap.error("gannet binary not found or not executable: %s (build it, or pass --gannet)" % args.gannet)

    started = time.time()
    report = {"n_prompt": args.n_prompt, "n_gen": args.n_gen, "threads": args.threads, "rounds": args.rounds,
              "models": [bench_model(args, m) for m in models]}
    first_llama = report["models"][0]["rounds_raw"][0]["llamacpp"]
    report["llamacpp_build"] = {"version": first_llama["version"], "system_info": first_llama["system_info"]}
    report["machine"] = machine_description()
    report["gannet_binary"] = args.gannet
    report["seconds"] = round(time.time() - started, 1)
    report["command"] = shlex.join([os.path.relpath(sys.executable) if sys.executable.startswith(REPO_ROOT)
                                    else sys.executable] + sys.argv)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
