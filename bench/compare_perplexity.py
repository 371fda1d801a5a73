#!/usr/bin/env python3
"""Perplexity of gannet against llama.cpp on the same GGUF file and text, and the KL divergence
between the two engines' next-token distributions.

llama.cpp side (llama-cpp-python, logits_all): the text is tokenized by llama.cpp (BOS/EOS as the
model's metadata asks), cut into consecutive windows of -c tokens, each window evaluated from an
empty cache with its first token replaced by BOS where the model adds one, and the second half
scored, exactly as llama-perplexity does. Its distributions at the scored positions are written in
gannet's base-file format (src/cli/kld_file.h: the windows' tokens and, per position, the top-k
log-probabilities, the rest's mass and the log-probability of the token that followed).

gannet side: `gannet perplexity -f TEXT --kl-divergence BASE` evaluates the same windows (it checks
that its own tokenization of the text gives the tokens in the file) and reports its PPL beside
llama.cpp's, their ratio, and KL(llama.cpp || gannet) over the top-k tokens plus the rest, top-1
agreement and delta-p.

--base-model FILE / --base-type TYPE measure both engines against a reference, as llama-perplexity's
--kl-divergence does against an F16 model's logits: llama.cpp evaluates the reference (FILE, or a
copy of -m that llama.cpp's quantizer writes in TYPE: F32 is the same weights, dequantized, so the
only differences left are each engine's arithmetic: activations rounded before the integer dot
products, sums, attention), its distributions go into the base file, and both llama.cpp and
gannet on -m are scored against it: PPL, KL(reference || engine) over the reference's top-k plus
the rest (the formula of `gannet perplexity --kl-divergence`), top-1 agreement with the
reference. The engine with the smaller KL is the more accurate on that file.

--requantize TYPE first writes a copy of the model in another weight type with llama.cpp's own
quantizer (llama_model_quantize, requantizing from the file's weights; its mix rules, as
llama-quantize applies them) and compares the two engines on that copy, so that each weight
format's kernels can be checked on a real model's weights and a real text.

Usage:
  .venv/bin/python bench/compare_perplexity.py -m models/gemma-3-270m-q4_k_m.gguf \\
      -f bench/data/eval/python_topics.txt -c 512 --chunks 20 -t 2
  .venv/bin/python bench/compare_perplexity.py --requantize Q4_0 -c 512 --chunks 20 -t 2
  .venv/bin/python bench/compare_perplexity.py --base-type F32 -c 512 --chunks 20 -t 2
"""
import argparse
import math
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join("models", "gemma-3-270m-q4_k_m.gguf")
DEFAULT_TEXT = os.path.join("bench", "data", "eval", "python_topics.txt")
MAGIC = b"GNTKLD01"
VERSION = 1
ROWS_PER_BLOCK = 32  # log-softmax in float64 over this many rows at a time


def llamacpp_windows(llm, text, ctx, chunks):
    """The windows llama-perplexity evaluates: [n_chunks * ctx] token ids."""
    import llama_cpp as L

    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    available = len(ids) // ctx
    if available < 1:
        raise SystemExit(f"the text has {len(ids)} tokens, fewer than one window of {ctx}")
    n_chunks = min(chunks, available) if chunks > 0 else available
    windows = np.array(ids[: n_chunks * ctx], dtype=np.int32)
    vocab = L.llama_model_get_vocab(llm.model)
    if L.llama_vocab_get_add_bos(vocab):
        windows[::ctx] = L.llama_vocab_bos(vocab)
    return windows


def log_softmax(logits):
    """Rows of logits -> (the rows in float64, their log-probabilities)."""
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x, x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def mean_and_error(values):
    """The mean of `values` and its standard error (that of gannet's MeanAccumulator)."""
    a = np.asarray(values, dtype=np.float64)
    if len(a) < 2:
        return float(a.mean()), 0.0
    return float(a.mean()), math.sqrt(max(np.mean(a * a) - a.mean() ** 2, 0.0) / (len(a) - 1))


def score_rows(logits, targets, top_k):
    """Per row: log p(target), log of the mass outside the top_k, top_k ids and log-probs."""
    x, logp = log_softmax(logits)
    target_lp = logp[np.arange(len(targets)), targets]
    top = np.argpartition(-x, top_k - 1, axis=1)[:, :top_k]
    top_lp = np.take_along_axis(logp, top, axis=1)
    order = np.lexsort((top, -top_lp), axis=1)  # most probable first, then the lower id
    top = np.take_along_axis(top, order, axis=1)
    top_lp = np.take_along_axis(top_lp, order, axis=1)
    rest = 1.0 - np.exp(top_lp).sum(axis=1)
    with np.errstate(divide="ignore"):
        rest_lp = np.where(rest > 0, np.log(np.maximum(rest, 1e-300)), -np.inf)
    return target_lp, rest_lp, top.astype(np.int32), top_lp.astype(np.float32)


def llamacpp_perplexity(model, text_path, ctx, chunks, threads, base_out, top_k=64, batch=512):
    """Runs llama.cpp over the windows, writes the base file; returns (ppl, error, n_scored)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_batch=min(batch, ctx), n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    with open(text_path, encoding="utf-8") as f:
        windows = llamacpp_windows(llm, f.read(), ctx, chunks)
    n_chunks = len(windows) // ctx
    n_vocab = llm.n_vocab()
    first = ctx // 2
    nll = []
    with open(base_out, "wb") as out:
        out.write(MAGIC + struct.pack("<IIqqq", VERSION, top_k, n_vocab, ctx, n_chunks))
        out.write(windows.astype("<i4").tobytes())
        for c in range(n_chunks):
            window = windows[c * ctx:(c + 1) * ctx]
            llm.reset()
            llm.eval(window[:ctx - 1].tolist())
            for b in range(first, ctx - 1, ROWS_PER_BLOCK):
                e = min(b + ROWS_PER_BLOCK, ctx - 1)
                tlp, rlp, ids, lps = score_rows(llm.scores[b:e], window[b + 1:e + 1], top_k)
                nll.extend((-tlp).tolist())
                for i in range(e - b):
                    out.write(struct.pack("<ff", tlp[i], rlp[i]))
                    out.write(ids[i].astype("<i4").tobytes() + lps[i].astype("<f4").tobytes())
            print(f"[{c + 1}]{math.exp(float(np.mean(nll))):.4f}", file=sys.stderr, flush=True)
    lnl, lnl_err = mean_and_error(nll)
    return math.exp(lnl), math.exp(lnl) * lnl_err, len(nll)


def read_base(path):
    """A base file (src/cli/kld_file.h): (ctx, n_vocab, windows [n_chunks * ctx], records), the
    records as arrays over the scored positions: target_lp [n], rest_lp [n], ids [n, k], lps [n, k]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise SystemExit(f"{path}: not a gannet base file")
    if len(data) < 40:
        raise SystemExit(f"{path}: {len(data)} bytes, shorter than the 40-byte header")
    version, top_k, n_vocab, ctx, n_chunks = struct.unpack_from("<IIqqq", data, 8)
    if version != VERSION:
        raise SystemExit(f"{path}: version {version}, expected {VERSION}")
    # The header's sizes are checked before anything is sized from them.
    if not (1 <= n_vocab <= 1 << 24 and 1 <= top_k <= n_vocab and 4 <= ctx <= 1 << 20
            and 1 <= n_chunks <= 1 << 20):
        raise SystemExit(f"{path}: header out of range (top_k {top_k}, vocabulary {n_vocab}, "
                         f"context {ctx}, windows {n_chunks})")
    rec = np.dtype([("tlp", "<f4"), ("rest", "<f4"), ("ids", "<i4", (top_k,)), ("lps", "<f4", (top_k,))])
    n = n_chunks * (ctx - 1 - ctx // 2)
    off = 40 + 4 * n_chunks * ctx
    if off + n * rec.itemsize != len(data):
        raise SystemExit(f"{path}: {len(data)} bytes, expected {off + n * rec.itemsize}")
    windows = np.frombuffer(data, dtype="<i4", count=n_chunks * ctx, offset=40)
    r = np.frombuffer(data, dtype=rec, count=n, offset=off)
    if ((windows < 0) | (windows >= n_vocab)).any() or ((r["ids"] < 0) | (r["ids"] >= n_vocab)).any():
        raise SystemExit(f"{path}: a token id outside the vocabulary of {n_vocab}")
    return ctx, n_vocab, windows, r


def kl_against_base(logits, records):
    """Per row: KL(base || this) over the base's top-k tokens plus the rest bucket, whether the
    argmax is the base's most probable token; and this model's log-probabilities."""
    x, logq = log_softmax(logits)
    lq = np.take_along_axis(logq, records["ids"].astype(np.int64), axis=1)
    lp = records["lps"].astype(np.float64)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1)
    rest = records["rest"].astype(np.float64)
    q_rest = np.log(np.maximum(1.0 - np.exp(lq).sum(axis=1), 1e-30))
    finite = np.isfinite(rest)
    kld[finite] += np.exp(rest[finite]) * (rest[finite] - q_rest[finite])
    return np.maximum(kld, 0.0), records["ids"][:, 0] == x.argmax(axis=1), logq


def llamacpp_against_base(model, base, threads, batch=512):
    """llama.cpp on `model` over the base file's windows; returns (ppl, error, kld mean, kld
    error, top-1 agreement %)."""
    import llama_cpp

    ctx, n_vocab, windows, records = read_base(base)
    llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_batch=min(batch, ctx), n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    if llm.n_vocab() != n_vocab:
        raise SystemExit(f"{model} has a vocabulary of {llm.n_vocab()}, the base file's model "
                         f"{n_vocab}: the reference must share the model's vocabulary")
    first = ctx // 2
    per = ctx - 1 - first
    nll, klds, agree = [], [], []
    for c in range(len(windows) // ctx):
        window = windows[c * ctx:(c + 1) * ctx]
        llm.reset()
        llm.eval(window[:ctx - 1].tolist())
        for b in range(first, ctx - 1, ROWS_PER_BLOCK):
            e = min(b + ROWS_PER_BLOCK, ctx - 1)
            r = records[c * per + b - first:c * per + e - first]
            kld, top1, logq = kl_against_base(np.asarray(llm.scores[b:e]), r)
            nll.extend((-logq[np.arange(e - b), window[b + 1:e + 1]]).tolist())
            klds.extend(kld.tolist())
            agree.extend(top1.tolist())
        print(f"[{c + 1}]{math.exp(float(np.mean(nll))):.4f}", file=sys.stderr, flush=True)
    lnl, lnl_err = mean_and_error(nll)
    kld, kld_err = mean_and_error(klds)
    return math.exp(lnl), math.exp(lnl) * lnl_err, kld, kld_err, 100.0 * float(np.mean(agree))


def requantize(model, out, qtype, threads):
    """Writes `model` in weight type `qtype` (llama.cpp's name, e.g. Q8_0) with llama.cpp's quantizer."""
    import ctypes

    import llama_cpp

    name = "ALL_F32" if qtype.upper() == "F32" else "MOSTLY_" + qtype.upper()
    ftype = getattr(llama_cpp, "LLAMA_FTYPE_" + name, None)
    if ftype is None:
        raise SystemExit(f"llama.cpp has no file type {qtype!r}")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = max(threads, 1)
    p.allow_requantize = True
    if llama_cpp.llama_model_quantize(model.encode(), out.encode(), ctypes.byref(p)) != 0:
        raise SystemExit(f"llama_model_quantize could not write {qtype} from {model}")


def gannet_against_base(gannet_bin, model, text_path, base, threads):
    """Runs gannet perplexity against the base file; returns (its stdout, parsed figures)."""
    cmd = [gannet_bin, "perplexity", "-m", model, "-f", text_path, "--kl-divergence", base, "-q"]
    if threads > 0:
        cmd += ["-t", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gannet perplexity failed: {r.stderr.strip()}")
    figures = {}
    for key, pattern in {"ppl": r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)",
                         "kld": r"Mean KLD\s*:\s*([\d.eE+-]+) \+/- ([\d.eE+-]+)",
                         "top1": r"Top-1 agreement\s*:\s*([\d.]+) \+/- ([\d.]+)",
                         "ratio": r"PPL\(this\)/PPL\(base\)\s*:\s*([\d.]+) \+/- ([\d.]+)"}.items():
        m = re.search(pattern, r.stdout)
        if not m:
            raise SystemExit(f"no {key} in gannet's output:\n{r.stdout}")
        figures[key] = (float(m.group(1)), float(m.group(2)))
    return r.stdout, figures


def against_reference(args, reference, base):
    """Both engines on args.model, scored against llama.cpp's distributions of `reference`."""
    t0 = time.time()
    ref_ppl, ref_err, n = llamacpp_perplexity(reference, args.file, args.ctx, args.chunks,
                                              args.threads, base, args.top_k)
    t1 = time.time()
    l_ppl, l_err, l_kld, l_kld_err, l_top1 = llamacpp_against_base(args.model, base, args.threads)
    t2 = time.time()
    out, g = gannet_against_base(args.gannet, args.model, args.file, base, args.threads)
    t3 = time.time()
    print(out, end="")
    name = os.path.basename(args.base_model) if args.base_model else f"{args.base_type.upper()} copy of -m"
    print(f"\nreference: {name}, PPL {ref_ppl:.4f} +/- {ref_err:.4f} (llama.cpp, {t1 - t0:.0f} s); "
          f"{n} positions, its top-{args.top_k} + rest")
    print("\n| engine | PPL | KL from the reference | top-1 agreement | time |\n|---|---|---|---|---|")
    print(f"| llama.cpp (llama-cpp-python) | {l_ppl:.4f} +/- {l_err:.4f} | {l_kld:.6f} +/- {l_kld_err:.6f} "
          f"| {l_top1:.2f}% | {t2 - t1:.0f} s |")
    print(f"| gannet | {g['ppl'][0]:.4f} +/- {g['ppl'][1]:.4f} | {g['kld'][0]:.6f} +/- {g['kld'][1]:.6f} "
          f"| {g['top1'][0]:.2f}% | {t3 - t2:.0f} s |")
    kl_ratio = f"{g['kld'][0] / l_kld:.4f}" if l_kld > 0 else "(llama.cpp's KL is 0)"
    print(f"gannet/llama.cpp: PPL {g['ppl'][0] / l_ppl:.5f}, KL {kl_ratio}")
    print("command: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/compare_perplexity.py"] + sys.argv[1:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=DEFAULT_MODEL)
    ap.add_argument("-f", "--file", default=DEFAULT_TEXT)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=-1, help="first N windows only (default: all)")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--gannet", default=os.environ.get("GANNET_BIN", os.path.join(REPO_ROOT, "build", "bin", "gannet")))
    ap.add_argument("--keep-base", help="also keep llama.cpp's base file at this path")
    ap.add_argument("--requantize", metavar="TYPE",
                    help="compare on a copy of the model in this weight type (llama.cpp's quantizer)")
    ap.add_argument("--base-model", metavar="FILE",
                    help="score both engines against this reference model's distributions")
    ap.add_argument("--base-type", metavar="TYPE",
                    help="the reference: a copy of -m in this type (e.g. F32: the same weights)")
    args = ap.parse_args()
    if args.base_model and args.base_type:
        raise SystemExit("--base-model and --base-type are exclusive")

    with tempfile.TemporaryDirectory() as tmp:
        reference = args.base_model
        if args.base_type:
            reference = os.path.join(tmp, f"reference-{args.base_type.lower()}.gguf")
            requantize(args.model, reference, args.base_type, args.threads)
        if args.requantize:
            copy = os.path.join(tmp, f"requantized-{args.requantize.lower()}.gguf")
            requantize(args.model, copy, args.requantize, args.threads)
            print(f"{args.model} requantized to {args.requantize.upper()} by llama.cpp "
                  f"({os.path.getsize(copy) / 2**20:.1f} MiB)", file=sys.stderr)
            args.model = copy
        base = args.keep_base or os.path.join(tmp, "llamacpp.kld")
        if reference:
            against_reference(args, reference, base)
            return
        t0 = time.time()
        ppl, err, n = llamacpp_perplexity(args.model, args.file, args.ctx, args.chunks, args.threads,
                                          base, args.top_k)
        t1 = time.time()
        out, g = gannet_against_base(args.gannet, args.model, args.file, base, args.threads)
        t2 = time.time()
    print(out, end="")
    print(f"\n| engine | PPL | time |\n|---|---|---|")
    print(f"| llama.cpp (llama-cpp-python) | {ppl:.4f} +/- {err:.4f} | {t1 - t0:.0f} s |")
    print(f"| gannet | {g['ppl'][0]:.4f} +/- {g['ppl'][1]:.4f} | {t2 - t1:.0f} s |")
    print(f"PPL gannet/llama.cpp: {g['ppl'][0] / ppl:.5f} (per-token ratio {g['ratio'][0]:.5f} +/- {g['ratio'][1]:.5f})")
    print(f"KL(llama.cpp || gannet): {g['kld'][0]:.6f} +/- {g['kld'][1]:.6f} over {n} positions "
          f"(top-{args.top_k} + rest); top-1 agreement {g['top1'][0]:.2f}%")
    print("command: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/compare_perplexity.py"] + sys.argv[1:]))


if __name__ == "__main__":
    main()
