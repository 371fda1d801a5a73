#!/usr/bin/env python3
"""Write the GGUF test fixtures with the official `gguf` package (an independent writer).

Run from the repository root:

    .venv/bin/python tools/make_gguf_fixtures.py

It writes into tests/fixtures/gguf/:
  all_types.gguf   metadata of every value type (scalars, arrays of each element type, nested
                   arrays, a long chat template) and F32, F16 and Q8_0 tensors, default alignment 32.
  aligned64.gguf   general.alignment = 64 and tensors of several quantized types.
  <name>.json      what a reader must find in <name>.gguf: version, alignment, counts, data offset,
                   every key with its type signature and value, every tensor with its type, shape
                   (ggml order), offset, byte count and the sha256 of its bytes.

tests/unit/formats/gguf_test.cc reads both and checks a C++ reader against the JSON. The output
is deterministic (fixed seed): rerunning the script must not change the committed files.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import quantize

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"

SCALAR_NAMES = {
    GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
    GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
    GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
    GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64", GGUFValueType.FLOAT64: "f64",
}
GGML_NAMES = {
    GGMLQuantizationType.F32: "f32", GGMLQuantizationType.F16: "f16",
    GGMLQuantizationType.Q8_0: "q8_0", GGMLQuantizationType.Q4_0: "q4_0",
    GGMLQuantizationType.Q4_K: "q4_K", GGMLQuantizationType.Q6_K: "q6_K",
    GGMLQuantizationType.BF16: "bf16",
}

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def f32(x: float) -> float:
    """The value a float32 field really holds, as a Python float (exact in JSON)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Fixture:
    """A GGUFWriter plus the expectation it should produce."""

    def __init__(self, name: str, alignment: int | None = None):
        self.name = name
        self.path = OUT / f"{name}.gguf"
        self.w = GGUFWriter(str(self.path), arch="testarch")
        self.alignment = 32
        self.keys: list[dict] = [{"key": "general.architecture", "type": "string", "value": "testarch"}]
        self.tensors: list[dict] = []
        if alignment is not None:
            self.w.add_custom_alignment(alignment)
            self.alignment = alignment
            self.keys.append({"key": "general.alignment", "type": "u32", "value": alignment})

    def scalar(self, key: str, vtype: GGUFValueType, value) -> None:
        self.w.add_key_value(key, value, vtype)
        self.keys.append({"key": key, "type": SCALAR_NAMES[vtype],
                          "value": f32(value) if vtype == GGUFValueType.FLOAT32 else value})

    def array(self, key: str, sub: GGUFValueType, values: list) -> None:
        self.w.add_key_value(key, values, GGUFValueType.ARRAY, sub_type=sub)
        if sub == GGUFValueType.FLOAT32:
            values = [f32(v) for v in values]
        self.keys.append({"key": key, "type": f"array<{SCALAR_NAMES[sub]}>", "value": values})

    def nested(self, key: str, values: list, signature: str) -> None:
        # The writer infers the element type of each inner list from its first element.
        self.w.add_key_value(key, values, GGUFValueType.ARRAY)
        self.keys.append({"key": key, "type": signature, "value": values})

    def tensor(self, name: str, data: np.ndarray, qtype: GGMLQuantizationType) -> None:
        """data: float32 array in numpy order [rows, cols]; stored with ne = reversed shape."""
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            raw = quantize(data, qtype)
            self.w.add_tensor(name, raw)
            return self._expect(name, data.shape, qtype, raw.tobytes())
        if qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0):
            raw = quantize(data, qtype)
        else:
            # gguf-py has no K-quant quantizer: random blocks of the right size (the reader does not
            # look inside blocks).
            block, size = GGML_QUANT_SIZES[qtype]
            seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
            rows = data.reshape(-1, data.shape[-1])
            raw = np.random.default_rng(seed).integers(0, 256, size=(rows.shape[0], rows.shape[1] // block * size),
                                                       dtype=np.uint8)
        self.w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        self._expect(name, data.shape, qtype, raw.tobytes())

    def _expect(self, name: str, shape: tuple, qtype: GGMLQuantizationType, blob: bytes) -> None:
        self.tensors.append({"name": name, "type": GGML_NAMES[qtype], "shape": list(reversed(shape)),
                             "n_elements": int(np.prod(shape)), "n_bytes": len(blob),
                             "sha256": hashlib.sha256(blob).hexdigest()})

    def finish(self) -> None:
        self.w.write_header_to_file()
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()
        # Offsets and the data start come from gguf-py's own reader, not from this script's arithmetic.
        reader = GGUFReader(str(self.path))
        by_name = {t.name: t for t in reader.tensors}
        data_offset = min(int(t.data_offset) for t in reader.tensors)
        for t in self.tensors:
            rt = by_name[t["name"]]
            t["offset"] = int(rt.data_offset) - data_offset
            assert hashlib.sha256(rt.data.tobytes()).hexdigest() == t["sha256"], t["name"]
        expect = {
            "file": self.path.name, "version": 3, "alignment": self.alignment,
            "n_tensors": len(self.tensors), "n_kv": len(self.keys), "data_offset": data_offset,
            "file_size": self.path.stat().st_size, "metadata": self.keys, "tensors": self.tensors,
        }
        (OUT / f"{self.name}.json").write_text(json.dumps(expect, indent=1, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
        print(f"wrote {self.path.relative_to(ROOT)} ({expect['file_size']} bytes)")


def all_types(rng: np.random.Generator) -> None:
    fx = Fixture("all_types")
    T = GGUFValueType
    fx.scalar("test.u8", T.UINT8, 255)
    fx.scalar("test.i8", T.INT8, -128)
    fx.scalar("test.u16", T.UINT16, 65535)
    fx.scalar("test.i16", T.INT16, -32768)
    fx.scalar("test.u32", T.UINT32, 4294967295)
    fx.scalar("test.i32", T.INT32, -2147483648)
    fx.scalar("test.u64", T.UINT64, 18446744073709551615)
    fx.scalar("test.i64", T.INT64, -9223372036854775808)
    fx.scalar("test.f32", T.FLOAT32, 3.14159)
    fx.scalar("test.f64", T.FLOAT64, -2.718281828459045e-300)
    fx.scalar("test.bool_true", T.BOOL, True)
    fx.scalar("test.bool_false", T.BOOL, False)
    fx.scalar("test.string", T.STRING, "h\u00e9llo \u2713 \u4e16\u754c \"quoted\"\ttab\nnewline")
    fx.scalar("test.empty_string", T.STRING, "")
    fx.scalar("test.nul_string", T.STRING, "a\u0000b")
    fx.scalar("tokenizer.chat_template", T.STRING, CHAT_TEMPLATE)
    fx.array("test.arr_u8", T.UINT8, [0, 1, 254, 255])
    fx.array("test.arr_i8", T.INT8, [-128, -1, 0, 127])
    fx.array("test.arr_u16", T.UINT16, [0, 65535])
    fx.array("test.arr_i16", T.INT16, [-32768, 32767])
    fx.array("test.arr_u32", T.UINT32, [0, 7, 4294967295])
    fx.array("test.arr_i32", T.INT32, [int(x) for x in rng.integers(-2**31, 2**31, size=40)])
    fx.array("test.arr_u64", T.UINT64, [0, 18446744073709551615])
    fx.array("test.arr_i64", T.INT64, [-9223372036854775808, 9223372036854775807])
    fx.array("test.arr_f32", T.FLOAT32, [float(x) for x in rng.standard_normal(20)])
    fx.array("test.arr_f64", T.FLOAT64, [1e-300, -0.5, 1e300])
    fx.array("test.arr_bool", T.BOOL, [True, False, True, True])
    fx.array("test.arr_string", T.STRING, ["", "a", "\u2581the", "<0x0A>", "two words"])
    fx.nested("test.nested_i32", [[1, 2, 3], [4], [5, 6]], "array<array<i32>>")
    fx.nested("test.nested_string", [["a", "b"], ["c"]], "array<array<string>>")
    fx.nested("test.nested3", [[[1, 2], [3]], [[4]]], "array<array<array<i32>>>")
    fx.tensor("token_embd.weight", rng.standard_normal((16, 64)).astype(np.float32), GGMLQuantizationType.Q8_0)
    fx.tensor("blk.0.attn_norm.weight", rng.standard_normal((1, 64)).astype(np.float32)[0],
              GGMLQuantizationType.F32)
    fx.tensor("blk.0.ffn_up.weight", rng.standard_normal((8, 64)).astype(np.float32), GGMLQuantizationType.F16)
    fx.tensor("blk.0.odd", rng.standard_normal((3, 5)).astype(np.float32), GGMLQuantizationType.F32)
    fx.tensor("blk.0.cube", rng.standard_normal((2, 3, 4)).astype(np.float32), GGMLQuantizationType.F16)
    fx.finish()


def aligned64(rng: np.random.Generator) -> None:
    fx = Fixture("aligned64", alignment=64)
    fx.scalar("general.name", GGUFValueType.STRING, "aligned fixture")
    fx.array("tokenizer.ggml.tokens", GGUFValueType.STRING, [f"tok{i}" for i in range(300)])
    fx.array("tokenizer.ggml.scores", GGUFValueType.FLOAT32, [float(-i) / 4 for i in range(300)])
    fx.tensor("a.q4_k", rng.standard_normal((2, 256)).astype(np.float32), GGMLQuantizationType.Q4_K)
    fx.tensor("b.q6_k", rng.standard_normal((1, 256)).astype(np.float32), GGMLQuantizationType.Q6_K)
    fx.tensor("c.q4_0", rng.standard_normal((3, 32)).astype(np.float32), GGMLQuantizationType.Q4_0)
    fx.tensor("d.f32", rng.standard_normal((7,)).astype(np.float32), GGMLQuantizationType.F32)
    fx.finish()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    all_types(rng)
    aligned64(rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
