#!/usr/bin/env python3
"""An independent numpy forward pass for GGUF models (Gemma 3 and the Llama family).

Written from the architecture definitions, not from gannet's C++ code, so that the engine can be
checked against something that shares none of its bugs. Weights are read with gguf.GGUFReader and
dequantized with gguf.quants.dequantize; every sequence is recomputed from scratch (no KV cache).

Supported architectures: gemma3, llama (NORM rope, optional rope_freqs.weight and linear scaling),
qwen2 (q/k/v biases, NEOX rope), qwen3 (q/k norms, NEOX rope).

Optional llama.cpp CPU rounding (reference doc section 2.3), used to measure how far an engine that
quantizes activations may drift from the dequantized-weights result:
  act_quant  the input of each weight matmul is rounded like ggml's vec_dot_type for that weight:
             Q8_0 per 32 (Q4_0/Q5_0/Q8_0 and Q4_1/Q5_1 partners), Q8_K per 256 (K-quants), f16 for F16.
  kv_f16     K and V rounded to f16 (the default KV cache), q and softmax probabilities to f16.
  gelu_f16   GELU through an f16 table (GGML_GELU_FP16).

Library use:
    from numpy_reference import load_model, forward, greedy
    m = load_model("model.gguf")            # float64 weights; dtype=np.float32 for big models
    logits = forward(m, [2, 651, 6037])     # [n_tokens, n_vocab]
    ids = greedy(m, [2, 651], 8)            # 8 new ids

CLI:
    python tools/numpy_reference.py MODEL --tokens 2,651,6037 [--greedy 8] [--top 10] [--dtype f32]
        [--act-quant] [--kv-f16] [--gelu-f16] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.quants import dequantize

# ggml vec_dot_type of each weight type on the CPU (reference doc section 2.3).
_Q8_0_PARTNERS = {QT.Q4_0, QT.Q5_0, QT.Q8_0, QT.Q4_1, QT.Q5_1}
_Q8_K_PARTNERS = {QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K}

_NEOX_ARCHES = {"gemma3", "qwen2", "qwen3"}
_NORM_ARCHES = {"llama"}


@dataclass
class Config:
    arch: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: list[int]
    n_head_kv: list[int]
    n_ff: list[int]
    head_dim_k: int
    head_dim_v: int
    n_rot: int
    rope_base: float
    rope_freq_scale: float
    rope_neox: bool
    rms_eps: float
    sliding_window: int  # 0 = off
    swa_layers: list[bool]
    rope_base_swa: float
    rope_freq_scale_swa: float
    attn_scale: float
    embed_scale: float
    activation: str  # "gelu_tanh" | "silu"


@dataclass
class Model:
    config: Config
    weights: dict[str, np.ndarray]  # dequantized; 2-D weights as [out, in] (rows = ne[1])
    types: dict[str, QT]
    metadata: dict[str, object] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.weights


def _field_value(f: gguf.ReaderField):
    return f.contents()


def _meta(md: dict, key: str, default=None):
    return md[key] if key in md else default


def _per_layer(v, n_layer: int) -> list[int]:
    if isinstance(v, (list, tuple)):
        if len(v) != n_layer:
            raise ValueError(f"per-layer array of length {len(v)} for {n_layer} layers")
        return [int(x) for x in v]
    return [int(v)] * n_layer


def read_metadata(reader: gguf.GGUFReader) -> dict[str, object]:
    md = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            md[key] = _field_value(f)
        except Exception:  # pragma: no cover - exotic types we do not need
            pass
    return md


def config_from_metadata(md: dict, n_vocab: int) -> Config:
    """Hyperparameters with llama.cpp's keys and defaults (reference doc section 1.5)."""
    arch = str(md["general.architecture"])
    if arch not in _NEOX_ARCHES | _NORM_ARCHES:
        raise NotImplementedError(f"architecture {arch!r}")
    a = lambda k, d=None: _meta(md, f"{arch}.{k}", d)  # noqa: E731
    n_layer = int(a("block_count"))
    n_embd = int(a("embedding_length"))
    n_head = _per_layer(a("attention.head_count"), n_layer)
    n_head_kv = _per_layer(a("attention.head_count_kv", n_head), n_layer)
    n_ff = _per_layer(a("feed_forward_length", 0), n_layer)
    head_dim_k = int(a("attention.key_length", n_embd // n_head[0]))
    head_dim_v = int(a("attention.value_length", n_embd // n_head[0]))
    n_rot = int(a("rope.dimension_count", head_dim_k))
    rope_base = float(a("rope.freq_base", 10000.0))

    # Linear scaling: llama.cpp reads rope.scale_linear, then rope.scaling.factor; freq_scale = 1/factor.
    scaling_type = str(a("rope.scaling.type", "linear"))
    factor = float(a("rope.scale_linear", 0.0) or 0.0)
    if factor == 0.0:
        factor = float(a("rope.scaling.factor", 0.0) or 0.0)
    if scaling_type not in ("linear", "none") and factor not in (0.0, 1.0):
        raise NotImplementedError(f"rope scaling type {scaling_type!r}")
    freq_scale = 1.0 if (factor == 0.0 or scaling_type == "none") else 1.0 / factor

    rms_eps = float(a("attention.layer_norm_rms_epsilon", 1e-5))
    sliding_window = int(a("attention.sliding_window", 0) or 0)
    swa_layers = [False] * n_layer
    attn_scale = 1.0 / math.sqrt(head_dim_k)
    embed_scale = 1.0
    activation = "silu"
    if arch == "gemma3":
        # llama.cpp: SWA pattern 6, sliding when il % 6 < 5; sliding layers use theta 1e4, scale 1.
        if sliding_window > 0:
            swa_layers = [il % 6 < 5 for il in range(n_layer)]
        if n_layer == 62:  # Gemma 3 27B scales by the hidden size per head instead.
            attn_scale = 1.0 / math.sqrt(n_embd / n_head[0])
        # ggml computes sqrtf(n_embd) in f32.
        embed_scale = float(np.sqrt(np.float32(n_embd)))
        activation = "gelu_tanh"
    return Config(
        arch=arch, n_layer=n_layer, n_embd=n_embd, n_vocab=n_vocab, n_head=n_head, n_head_kv=n_head_kv,
        n_ff=n_ff, head_dim_k=head_dim_k, head_dim_v=head_dim_v, n_rot=n_rot, rope_base=rope_base,
        rope_freq_scale=freq_scale, rope_neox=arch in _NEOX_ARCHES, rms_eps=rms_eps,
        sliding_window=sliding_window, swa_layers=swa_layers, rope_base_swa=10000.0,
        rope_freq_scale_swa=1.0, attn_scale=attn_scale, embed_scale=embed_scale, activation=activation)


def load_model(path: str | Path, dtype=np.float64) -> Model:
    reader = gguf.GGUFReader(str(path))
    md = read_metadata(reader)
    weights: dict[str, np.ndarray] = {}
    types: dict[str, QT] = {}
    for t in reader.tensors:
        qt = QT(t.tensor_type)
        ne = [int(x) for x in t.shape]  # ne[0] innermost
        w = dequantize(np.asarray(t.data), qt)
        w = np.asarray(w, dtype=np.float32).reshape(list(reversed(ne)))
        weights[t.name] = w.astype(dtype, copy=False)
        types[t.name] = qt
    n_vocab = int(weights["token_embd.weight"].shape[0])
    cfg = config_from_metadata(md, n_vocab)
    return Model(config=cfg, weights=weights, types=types, metadata=md)


# ---------------------------------------------------------------------------------------------
# Activation rounding (llama.cpp CPU vec_dot_type).

def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(x.dtype)


def quantize_q8_0_act(x: np.ndarray) -> np.ndarray:
    """Round rows of x like ggml's quantize_row_q8_0 (AVX2 path, in f32): per 32, d = amax/127,
    q = round-to-nearest-even(x * 127/amax), d stored as f16."""
    shape = x.shape
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.round(b * inv), -127, 127)
    d16 = (amax / np.float32(127.0)).astype(np.float16).astype(np.float64)
    return (q.astype(np.float64) * d16).reshape(shape).astype(x.dtype)


def quantize_q8_k_act(x: np.ndarray) -> np.ndarray:
    """Round rows of x like quantize_row_q8_K_ref: per 256, iscale = -127/max (signed), q capped at 127."""
    shape = x.shape
    b = x.reshape(-1, 256).astype(np.float32)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(b.shape[0]), idx][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(mx != 0, np.float32(-127.0) / mx, np.float32(0.0)).astype(np.float32)
        q = np.minimum(np.round(iscale * b), 127.0)
        d = np.where(iscale != 0, np.float32(1.0) / iscale, np.float32(0.0)).astype(np.float32)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(shape).astype(x.dtype)


def round_activation(x: np.ndarray, wtype: QT) -> np.ndarray:
    k = x.shape[-1]
    if wtype in _Q8_0_PARTNERS and k % 32 == 0:
        return quantize_q8_0_act(x)
    if wtype in _Q8_K_PARTNERS and k % 256 == 0:
        return quantize_q8_k_act(x)
    if wtype == QT.F16:
        return _f16(x)
    if wtype == QT.BF16:
        u = x.astype(np.float32).view(np.uint32)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000  # round to nearest even
        return u.view(np.float32).astype(x.dtype)
    return x


# ---------------------------------------------------------------------------------------------
# Forward pass.

@dataclass
class Options:
    act_quant: bool = False
    kv_f16: bool = False
    gelu_f16: bool = False


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(u: np.ndarray) -> np.ndarray:
    return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def silu(u: np.ndarray) -> np.ndarray:
    return u / (1.0 + np.exp(-u))


def rope(x: np.ndarray, pos: np.ndarray, n_rot: int, base: float, freq_scale: float, neox: bool,
         freq_factors: np.ndarray | None = None) -> np.ndarray:
    """x [T, H, D]; rotates the first n_rot dims. NORM pairs (2i, 2i+1); NEOX pairs (i, i + n_rot/2).

    theta_i = freq_scale * pos * base^(-2i/n_rot) / ff_i (ggml_rope_ext without YaRN).
    """
    half = n_rot // 2
    i = np.arange(half, dtype=np.float64)
    inv = base ** (-2.0 * i / n_rot)
    if freq_factors is not None:
        inv = inv / freq_factors.astype(np.float64)
    theta = freq_scale * pos.astype(np.float64)[:, None] * inv[None, :]  # [T, half]
    cos = np.cos(theta)[:, None, :].astype(x.dtype)
    sin = np.sin(theta)[:, None, :].astype(x.dtype)
    out = x.copy()
    if neox:
        x0, x1 = x[..., :half], x[..., half:n_rot]
        out[..., :half] = x0 * cos - x1 * sin
        out[..., half:n_rot] = x0 * sin + x1 * cos
    else:
        x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:n_rot:2] = x0 * sin + x1 * cos
    return out


class _Runner:
    def __init__(self, model: Model, opts: Options):
        self.m = model
        self.c = model.config
        self.o = opts

    def w(self, name: str) -> np.ndarray:
        return self.m.weights[name]

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """x [T, in] @ W[out, in]^T (+ bias)."""
        if self.o.act_quant:
            x = round_activation(x, self.m.types[name])
        y = x @ self.w(name).T
        bias = name[: -len(".weight")] + ".bias"
        if bias in self.m.weights:
            y = y + self.w(bias)
        return y

    def attention(self, il: int, h: np.ndarray, pos: np.ndarray) -> np.ndarray:
        c, p = self.c, f"blk.{il}."
        T = h.shape[0]
        nh, nkv, dk, dv = c.n_head[il], c.n_head_kv[il], c.head_dim_k, c.head_dim_v
        q = self.linear(h, p + "attn_q.weight").reshape(T, nh, dk)
        k = self.linear(h, p + "attn_k.weight").reshape(T, nkv, dk)
        v = self.linear(h, p + "attn_v.weight").reshape(T, nkv, dv)
        if self.m.has(p + "attn_q_norm.weight"):  # Gemma 3, Qwen3: per-head RMSNorm before RoPE
            q = rms_norm(q, self.w(p + "attn_q_norm.weight"), c.rms_eps)
            k = rms_norm(k, self.w(p + "attn_k_norm.weight"), c.rms_eps)
        swa = c.swa_layers[il]
        base = c.rope_base_swa if swa else c.rope_base
        fscale = c.rope_freq_scale_swa if swa else c.rope_freq_scale
        ff = self.w("rope_freqs.weight") if self.m.has("rope_freqs.weight") else None
        q = rope(q, pos, c.n_rot, base, fscale, c.rope_neox, ff)
        k = rope(k, pos, c.n_rot, base, fscale, c.rope_neox, ff)
        q = q * c.attn_scale
        if self.o.kv_f16:
            q, k, v = _f16(q), _f16(k), _f16(v)

        # mask[i, j]: query i may see key j
        qi, kj = pos[:, None], pos[None, :]
        allowed = kj <= qi
        if swa:
            allowed &= (qi - kj) < c.sliding_window
        group = nh // nkv
        out = np.empty((T, nh, dv), dtype=h.dtype)
        for hh in range(nh):
            g = hh // group
            s = q[:, hh, :] @ k[:, g, :].T  # [T, T]
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            pr = e / e.sum(axis=1, keepdims=True)
            if self.o.kv_f16:
                pr = _f16(pr)
            out[:, hh, :] = pr @ v[:, g, :]
        return self.linear(out.reshape(T, nh * dv), p + "attn_output.weight")

    def ffn(self, il: int, h: np.ndarray) -> np.ndarray:
        p = f"blk.{il}."
        g = self.linear(h, p + "ffn_gate.weight")
        u = self.linear(h, p + "ffn_up.weight")
        if self.c.activation == "gelu_tanh":
            if self.o.gelu_f16:
                a = np.where(g <= -10, 0.0, np.where(g >= 10, g, _f16(gelu_tanh(_f16(g)))))
            else:
                a = gelu_tanh(g)
        else:
            a = silu(g)
        return self.linear(a * u, p + "ffn_down.weight")

    def run(self, tokens) -> np.ndarray:
        c = self.c
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence")
        if tokens.min() < 0 or tokens.max() >= c.n_vocab:
            raise ValueError("token id out of range")
        pos = np.arange(len(tokens))
        x = self.w("token_embd.weight")[tokens] * c.embed_scale  # [T, n_embd]
        gemma = c.arch == "gemma3"
        for il in range(c.n_layer):
            p = f"blk.{il}."
            h = rms_norm(x, self.w(p + "attn_norm.weight"), c.rms_eps)
            a = self.attention(il, h, pos)
            if gemma:
                a = rms_norm(a, self.w(p + "post_attention_norm.weight"), c.rms_eps)
            x = x + a
            h = rms_norm(x, self.w(p + "ffn_norm.weight"), c.rms_eps)
            f = self.ffn(il, h)
            if gemma:
                f = rms_norm(f, self.w(p + "post_ffw_norm.weight"), c.rms_eps)
            x = x + f
        x = rms_norm(x, self.w("output_norm.weight"), c.rms_eps)
        out = "output.weight" if self.m.has("output.weight") else "token_embd.weight"
        return self.linear(x, out)  # [T, n_vocab]


def forward(model: Model, tokens, opts: Options | None = None) -> np.ndarray:
    """Logits [len(tokens), n_vocab] for every position, causal, positions 0..n-1."""
    return _Runner(model, opts or Options()).run(tokens)


def greedy(model: Model, prompt_ids, n: int, opts: Options | None = None,
           margins: list[float] | None = None) -> list[int]:
    """n greedy tokens after prompt_ids, recomputing the whole sequence at each step.

    Ties go to the lowest id (numpy argmax). If margins is given, the top-1 minus top-2 logit of each
    step is appended to it.
    """
    ids = list(int(t) for t in prompt_ids)
    out = []
    for _ in range(n):
        last = forward(model, ids, opts)[-1]
        nxt = int(np.argmax(last))
        if margins is not None:
            top2 = np.partition(last, -2)[-2:]
            margins.append(float(top2[1] - top2[0]))
        out.append(nxt)
        ids.append(nxt)
    return out


def _main() -> int:
    ap = argparse.ArgumentParser(description="numpy reference forward pass for a GGUF model")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, help="also decode this many greedy tokens")
    ap.add_argument("--top", type=int, default=10, help="print the top-k logits of the last position")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f64")
    ap.add_argument("--act-quant", action="store_true")
    ap.add_argument("--kv-f16", action="store_true")
    ap.add_argument("--gelu-f16", action="store_true")
    ap.add_argument("--json", type=Path, help="write the result (and last-position logits) here")
    args = ap.parse_args()
    model = load_model(args.model, np.float32 if args.dtype == "f32" else np.float64)
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    opts = Options(args.act_quant, args.kv_f16, args.gelu_f16)
    logits = forward(model, tokens, opts)
    last = logits[-1]
    top = np.argsort(-last, kind="stable")[: args.top]
    result = {"tokens": tokens, "top_ids": [int(i) for i in top], "top_logits": [float(last[i]) for i in top]}
    if args.greedy:
        result["greedy"] = greedy(model, tokens, args.greedy, opts)
    print(json.dumps(result))
    if args.json:
        result["last_logits"] = [float(v) for v in last]
        args.json.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
