#!/usr/bin/env python3
"""Writes the golden files for tests/unit/tensor/quant_test.cc.

Run from anywhere (the repository root is found from this file's location):

    .venv/bin/python tools/quant_golden.py

The independent reference is the `gguf` Python package (gguf-py, numpy code):
- dequant_<type>.bin: random blocks (random quant bytes, finite f16 scale fields, plus
  adversarial blocks: zero scales, negative scales, all-ones quant bits, subnormal f16 scales)
  and their values from gguf.quants.dequantize.
- quant_<type>.bin: random f32 rows (plus zero, constant and tie-prone blocks) and the bytes
  gguf.quants.quantize produces, for every type gguf can quantize.

File format (little-endian): magic b"GQG1", then u32 fields: version (1), ggml type id,
kind (0 = dequantize, 1 = quantize), n_values, n_bytes; then for kind 0 the n_bytes block
bytes followed by n_values f32, for kind 1 the n_values f32 followed by the n_bytes.
The seed is fixed: rerunning rewrites identical files.
"""

import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "quant"

# f16 scale fields (byte offsets inside a block) that must hold finite, sane values.
SCALE_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
N_BLOCKS = {T.Q4_K: 12, T.Q5_K: 12, T.Q6_K: 12}  # 256-value types; others get 48 blocks


def write(path, qtype, kind, n_values, raw, values):
    with open(path, "wb") as f:
        f.write(b"GQG1")
        f.write(struct.pack("<5I", 1, int(qtype), kind, n_values, len(raw)))
        if kind == 0:
            f.write(raw)
            f.write(values.astype("<f4").tobytes())
        else:
            f.write(values.astype("<f4").tobytes())
            f.write(raw)


def sane_f16(rng, n, signed):
    mag = 10.0 ** rng.uniform(-4, 0.5, size=n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0) if signed else 1.0
    return (mag * sign).astype(np.float16).view(np.uint16)


def random_blocks(rng, qtype):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    nb = N_BLOCKS.get(qtype, 48)
    raw = rng.integers(0, 256, size=(nb, type_size), dtype=np.uint8)
    fields = SCALE_FIELDS[qtype]
    k_quant = qtype in (T.Q4_K, T.Q5_K)
    for off in fields:
        # Symmetric types may carry negative d; K-quant d/dmin are normally positive.
        vals = sane_f16(rng, nb, signed=not k_quant)
        raw[:, off:off + 2] = vals.reshape(nb, 1).view(np.uint8).reshape(nb, 2)
    # Adversarial blocks.
    for off in fields:
        raw[0, off:off + 2] = 0                                     # zero scale
        neg = np.array([-0.37], dtype=np.float16).view(np.uint8)
        raw[1, off:off + 2] = neg                                   # negative scale
        sub = np.array([0x0001 + 0x155 * (off // 2)], dtype=np.uint16).view(np.uint8)
        raw[3, off:off + 2] = sub                                   # subnormal f16
    quant_bytes = np.ones(type_size, dtype=bool)
    for off in fields:
        quant_bytes[off:off + 2] = False
    raw[2, quant_bytes] = 0xFF                                      # max nibbles / codes
    raw[4, quant_bytes] = 0x00                                      # min codes
    return raw


def dequant_goldens(rng):
    for qtype in SCALE_FIELDS:
        raw = random_blocks(rng, qtype)
        values = quants.dequantize(raw.reshape(1, -1), qtype).reshape(-1)
        write(OUT / f"dequant_{qtype.name.lower()}.bin", qtype, 0, values.size, raw.tobytes(), values)
    # Plain 16-bit floats: every bit pattern class (subnormals, Inf, NaN) appears.
    for qtype in (T.F16, T.BF16):
        raw = rng.integers(0, 65536, size=1024, dtype=np.uint16)
        raw[:8] = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E00, 0x7BFF]
        values = quants.dequantize(raw.view(np.uint8).reshape(1, -1), qtype).reshape(-1)
        write(OUT / f"dequant_{qtype.name.lower()}.bin", qtype, 0, values.size, raw.tobytes(), values)


def quant_inputs(rng, n):
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 1, size=n // 32).repeat(32)).astype(np.float32)
    x[0:32] = 0.0                          # all-zero block
    x[32:64] = 0.75                        # constant block
    x[64:96] = np.arange(32) - 16          # integer grid: many exact ties
    x[96:128] = (np.arange(32) - 8) * 0.5  # half-integers
    x[128:160] = rng.standard_normal(32).astype(np.float32) * 1e-6
    x[160:192] = -x[160:192]
    return x


def quant_goldens(rng):
    n = 32 * 64
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        x = quant_inputs(rng, n)
        raw = quants.quantize(x.reshape(1, -1), qtype)
        write(OUT / f"quant_{qtype.name.lower()}.bin", qtype, 1, n, raw.tobytes(), x)
    # Float conversions: rounding ties, overflow, subnormals (NaN only for BF16, whose NaN
    # handling gguf spells out; numpy's f16 NaN payloads are platform-dependent).
    x = quant_inputs(rng, n)
    specials = np.array([65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1035156e-05, 5.9604645e-08,
                         2.980232e-08, 2.9802326e-08, 1e-8, -0.0, np.inf, -np.inf], dtype=np.float32)
    ties = (np.arange(64, dtype=np.uint32) << 13 | 0x1000).view(np.float32)
    ties = np.where(np.isfinite(ties), ties, 1.0).astype(np.float32)
    x16 = x.copy()
    x16[192:192 + specials.size] = specials
    x16[256:320] = ties + np.float32(1.0)
    raw = quants.quantize(x16.reshape(1, -1), T.F16)
    write(OUT / "quant_f16.bin", T.F16, 1, n, raw.tobytes(), x16)
    xb = x.copy()
    xb[192:192 + specials.size] = specials
    xb[256:320] = (np.arange(64, dtype=np.uint32) + 0x3F800000 | 0x8000).view(np.float32)
    xb[320:324] = np.array([0x7FC00001, 0x7F800001, 0xFF812345, 0x7F7FFFFF], dtype=np.uint32).view(np.float32)
    raw = quants.quantize(xb.reshape(1, -1), T.BF16)
    write(OUT / "quant_bf16.bin", T.BF16, 1, n, raw.tobytes(), xb)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    with np.errstate(all="ignore"):
        dequant_goldens(rng)
        quant_goldens(rng)
    total = sum(p.stat().st_size for p in OUT.glob("*.bin"))
    print(f"wrote {len(list(OUT.glob('*.bin')))} files, {total} bytes, to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
