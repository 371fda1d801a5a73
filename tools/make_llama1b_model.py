#!/usr/bin/env python3
"""Write a Llama-3.2-1B-shaped (or SmolLM2-135M-shaped) model with random weights, for benchmarks.

Shape of Llama 3.2 1B: arch llama, n_embd 2048, 16 layers, 32 heads / 8 KV heads, head_dim 64,
FFN 8192, vocab 128256, tied embeddings (no output.weight), rope theta 500000, rms eps 1e-5,
context 8192 (the llama3 rope-scaling factors are left out: they change no work per token). The
tokenizer (tokenizer.* keys) is copied from models/vocab/ggml-vocab-llama-bpe.gguf (128256 tokens).

--shape smollm2-135m writes a small, deep model instead (the shape where per-op overhead, not
bandwidth, decides decode speed): SmolLM2-135M's n_embd 576, 30 layers, 9 heads / 3 KV heads,
head_dim 64, FFN 1536, tied embeddings, rope theta 100000, context 8192; its vocabulary is
models/vocab/ggml-vocab-smollm.gguf (gpt-2's 50257 tokens with the smollm pre-tokenizer: 2% more
output rows than SmolLM2's own 49152), and it is quantized to Q8_0 and Q4_0 (the issue's formats)
instead of Q8_0 and Q4_K_M. Files: smollm2-135m-shape-{f16,q8_0,q4_0}.gguf.

Weights: normal with std 0.02 (norm weights 1.0), from numpy's PCG64 seeded per tensor, so every
run writes the same bytes. With that scale each projection keeps unit-variance inputs near unit
variance, so activations and logits stay in an ordinary range; the text the model writes is
noise, which is all a speed benchmark needs. The F16 file is written one tensor at a time (the
largest, the 128256 x 2048 embedding, is 0.5 GB in memory at once).

Outputs in models/ (about 2.5 + 1.3 + 0.8 GB):
  llama-3.2-1b-shape-f16.gguf      F16 (norms F32)
  llama-3.2-1b-shape-q8_0.gguf     `gannet quantize IN OUT q8_0`
  llama-3.2-1b-shape-q4_k_m.gguf   `gannet quantize IN OUT q4_k_m`

Other quantizers, for a gannet built without the quantize command: --q8-only writes the Q8_0 file
with gguf.quants (numpy) and skips Q4_K_M; --quantizer llamacpp writes both files with llama.cpp's
own quantizer (llama_model_quantize through llama-cpp-python; its Q4_K_M mix of Q4_K and Q6_K).
--check loads each file in gannet (`gannet run -p hi -n 4`) and in llama.cpp (llama-cpp-python:
load, decode four tokens).

Usage:
  .venv/bin/python tools/make_llama1b_model.py [--shape llama-3.2-1b|smollm2-135m] [--out models]
      [--gannet build/bin/gannet]
      [--quantizer gannet|llamacpp] [--q8-only] [--check] [--force]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

ROOT = Path(__file__).resolve().parent.parent
SEED = 20241023
# name: (vocabulary, n_embd, layers, heads, KV heads, head_dim, FFN, vocab, context, rope theta,
#        display name, quantized types besides Q8_0)
SHAPES = {
    "llama-3.2-1b": ("ggml-vocab-llama-bpe.gguf", 2048, 16, 32, 8, 64, 8192, 128256, 8192, 500000.0,
                     "Llama-3.2-1B-shaped", "q4_k_m"),
    "smollm2-135m": ("ggml-vocab-smollm.gguf", 576, 30, 9, 3, 64, 1536, 50257, 8192, 100000.0,
                     "SmolLM2-135M-shaped", "q4_0"),
}
RMS_EPS, STD = 1e-5, 0.02


def use_shape(name: str) -> None:
    """Sets the module's shape constants (read by tensor_plan and write_f16)."""
    global VOCAB, STEM, N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_VOCAB, N_CTX, ROPE_THETA
    global DISPLAY, LOW_TYPE
    (vocab, N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_VOCAB, N_CTX, ROPE_THETA, DISPLAY,
     LOW_TYPE) = SHAPES[name]
    VOCAB = ROOT / "models" / "vocab" / vocab
    STEM = name + "-shape"


use_shape("llama-3.2-1b")


def tensor_plan() -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape [rows, cols], kind) in file order; kind 'mat' (F16) or 'norm' (F32 ones)."""
    plan = [("token_embd.weight", (N_VOCAB, N_EMBD), "mat")]
    q_w, kv_w = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    for il in range(N_LAYER):
        b = "blk.%d." % il
        plan += [
            (b + "attn_norm.weight", (N_EMBD,), "norm"),
            (b + "attn_q.weight", (q_w, N_EMBD), "mat"),
            (b + "attn_k.weight", (kv_w, N_EMBD), "mat"),
            (b + "attn_v.weight", (kv_w, N_EMBD), "mat"),
            (b + "attn_output.weight", (N_EMBD, q_w), "mat"),
            (b + "ffn_norm.weight", (N_EMBD,), "norm"),
            (b + "ffn_gate.weight", (N_FF, N_EMBD), "mat"),
            (b + "ffn_up.weight", (N_FF, N_EMBD), "mat"),
            (b + "ffn_down.weight", (N_EMBD, N_FF), "mat"),
        ]
    plan.append(("output_norm.weight", (N_EMBD,), "norm"))
    return plan


def make_tensor(index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "norm":
        return np.ones(shape, dtype=np.float32)
    rng = np.random.default_rng([SEED, index])
    out = np.empty(shape, dtype=np.float16)
    chunk = 4096  # rows per draw: bounds the float32 temporary to 32 MB
    for r in range(0, shape[0], chunk):
        rows = min(chunk, shape[0] - r)
        out[r:r + rows] = (rng.standard_normal((rows, shape[1]), dtype=np.float32) * STD).astype(np.float16)
    return out


def copy_field(w: gguf.GGUFWriter, field) -> None:
    main = VT(field.types[0])
    if main == VT.ARRAY:
        w.add_key_value(field.name, list(field.contents()), VT.ARRAY, sub_type=VT(field.types[1]))
    else:
        w.add_key_value(field.name, field.contents(), main)


def write_f16(path: Path) -> None:
    vocab = gguf.GGUFReader(str(VOCAB))
    n_tokens = len(vocab.fields["tokenizer.ggml.tokens"].data)
    if n_tokens != N_VOCAB:
        raise SystemExit("%s has %d tokens, expected %d" % (VOCAB, n_tokens, N_VOCAB))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(DISPLAY + " (random weights)")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(N_VOCAB)
    for name, field in vocab.fields.items():
        if name.startswith("tokenizer."):
            copy_field(w, field)
    plan = tensor_plan()
    for name, shape, kind in plan:
        dtype = np.float32 if kind == "norm" else np.float16
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for i, (name, shape, kind) in enumerate(plan):
        w.write_tensor_data(make_tensor(i, shape, kind))
    w.close()


def quantize_q8_numpy(src: Path, dst: Path) -> None:
    """Q8_0 of every 2-D tensor (norms stay F32), with gguf.quants; one tensor in memory at a time."""
    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), "llama")
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
            continue
        copy_field(w, field)
    block, type_size = gguf.GGML_QUANT_SIZES[QT.Q8_0]
    out_types = []
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # numpy order
        if len(shape) == 2 and shape[1] % block == 0:
            out_types.append(QT.Q8_0)
            nbytes = shape[0] * shape[1] // block * type_size
            w.add_tensor_info(t.name, (shape[0], shape[1] // block * type_size), np.dtype(np.uint8), nbytes,
                              raw_dtype=QT.Q8_0)
        else:
            out_types.append(None)
            w.add_tensor_info(t.name, shape, t.data.dtype, t.data.nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t, qt in zip(r.tensors, out_types):
        if qt is None:
            w.write_tensor_data(np.array(t.data))
            continue
        src_rows = t.data.reshape(-1, int(t.shape[0]))
        parts = [gguf.quants.quantize(np.asarray(src_rows[i:i + 4096], dtype=np.float32), QT.Q8_0)
                 for i in range(0, src_rows.shape[0], 4096)]
        w.write_tensor_data(np.concatenate(parts))
    w.close()


def run(cmd: list[str], label: str | None = None) -> None:
    print("+ " + (label or " ".join(cmd)), flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise SystemExit("failed (%d): %s" % (r.returncode, label or " ".join(cmd)))


def quantize_llamacpp(src: Path, dst: Path, typ: str) -> None:
    """llama.cpp's quantizer, in a child process like the load check."""
    code = (
        "import sys, llama_cpp as L\n"
        "p = L.llama_model_quantize_default_params()\n"
        "p.ftype = {'q8_0': L.LLAMA_FTYPE_MOSTLY_Q8_0, 'q4_k_m': L.LLAMA_FTYPE_MOSTLY_Q4_K_M,\n"
        "           'q4_0': L.LLAMA_FTYPE_MOSTLY_Q4_0}[sys.argv[3]]\n"
        "rc = L.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p)\n"
        "sys.exit('llama_model_quantize returned %d' % rc if rc else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(dst), typ], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("llama.cpp quantize to %s failed: %s" % (typ, proc.stderr.strip()[-2000:]))


def check_llamacpp(path: Path) -> None:
    """Loads the file in llama.cpp and decodes four tokens (in a child, so its memory is returned)."""
    code = (
        "import sys, ctypes, llama_cpp as L\n"
        "quiet = L.llama_log_callback(lambda level, text, data: None)\n"
        "L.llama_log_set(quiet, ctypes.c_void_p(0))\n"
        "L.llama_backend_init()\n"
        "m = L.llama_model_load_from_file(sys.argv[1].encode(), L.llama_model_default_params())\n"
        "assert m, 'llama.cpp cannot load ' + sys.argv[1]\n"
        "p = L.llama_context_default_params(); p.n_ctx = 64; p.n_batch = 64\n"
        "c = L.llama_init_from_model(m, p); assert c, 'no context'\n"
        "toks = (L.llama_token * 4)(1, 15339 % L.llama_vocab_n_tokens(L.llama_model_get_vocab(m)), 1917, 0)\n"
        "assert L.llama_decode(c, L.llama_batch_get_one(toks, 4)) == 0, 'decode failed'\n"
        "print('llama.cpp: loaded and decoded 4 tokens,', L.llama_model_n_params(m), 'parameters')\n")
    run([sys.executable, "-c", code, str(path)], label="llama.cpp: load %s, decode 4 tokens" % path.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.2-1b",
                    help="the model's shape (default llama-3.2-1b)")
    ap.add_argument("--out", default=str(ROOT / "models"), help="output folder (default models/)")
    ap.add_argument("--gannet", default=str(ROOT / "build" / "bin" / "gannet"), help="gannet binary")
    ap.add_argument("--quantizer", choices=("gannet", "llamacpp"), default="gannet",
                    help="who writes Q8_0 and Q4_K_M: `gannet quantize` (default) or llama.cpp's quantizer")
    ap.add_argument("--q8-only", action="store_true",
                    help="write Q8_0 with gguf.quants instead, and no Q4_K_M")
    ap.add_argument("--check", action="store_true", help="load every file in gannet and llama.cpp")
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = ap.parse_args()
    use_shape(args.shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    f16 = out / (STEM + "-f16.gguf")
    q8 = out / (STEM + "-q8_0.gguf")
    q4 = out / (STEM + "-" + LOW_TYPE + ".gguf")

    if args.force or not f16.exists():
        print("writing " + str(f16), flush=True)
        tmp = f16.with_suffix(".tmp")
        write_f16(tmp)
        os.replace(tmp, f16)
    files = [f16]
    if args.q8_only:
        if args.force or not q8.exists():
            print("writing %s (gguf.quants)" % q8, flush=True)
            tmp = q8.with_suffix(".tmp")
            quantize_q8_numpy(f16, tmp)
            os.replace(tmp, q8)
        files.append(q8)
    else:
        for dst, typ in ((q8, "q8_0"), (q4, LOW_TYPE)):
            if args.force or not dst.exists():
                tmp = dst.with_suffix(".tmp")
                if args.quantizer == "gannet":
                    run([args.gannet, "quantize", str(f16), str(tmp), typ])
                else:
                    print("+ llama.cpp quantize %s -> %s (%s)" % (f16.name, dst.name, typ), flush=True)
                    quantize_llamacpp(f16, tmp, typ)
                os.replace(tmp, dst)
            files.append(dst)
    if args.check:
        for f in files:
            run([args.gannet, "run", "-m", str(f), "-p", "hi", "-n", "4", "--temp", "0"])
            check_llamacpp(f)
    for f in files:
        print("%s  %.2f GB" % (f, f.stat().st_size / 1e9))
    return 0


if __name__ == "__main__":
    sys.exit(main())
