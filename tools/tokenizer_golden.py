#!/usr/bin/env python3
"""Write llama.cpp's token ids for the tokenizer corpus: the goldens of tests/model/tokenizer_llamacpp_test.

For the default model (Gemma 3, SentencePiece) and each vocabulary of tools/fetch_vocabs.py, every line
of tests/fixtures/tokenizer/corpus.jsonl is tokenized by llama.cpp (through llama-cpp-python's C API:
llama_tokenize with add_special and parse_special each false and true) and detokenized
(llama_detokenize), and the result is written to tests/fixtures/tokenizer/<vocab>.jsonl.

Needs llama-cpp-python (compiled from source) and the model and vocabulary files:

    CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/pip install -r tools/requirements-reference.txt
    .venv/bin/python tools/fetch_model.py && .venv/bin/python tools/fetch_vocabs.py
    .venv/bin/python tools/tokenizer_golden.py

File format (JSON lines). The first line is a header: vocab name, llama.cpp version, n_vocab, bos, eos,
eot (-1 when none), add_bos, add_eos, eog (ids llama_vocab_is_eog accepts), and piece_hashes: for each
block of 4096 ids, FNV-1a 64 (hex) over, per id, the u32-LE length and bytes of
llama_token_to_piece(id, special=true), then the same for special=false. Then one object per corpus
line, in order:
  "p":  ids for add_special=false, parse_special=false
  "ps": ids for add_special=false, parse_special=true   (omitted when equal to "p")
  "a":  ids for add_special=true,  parse_special=false  (omitted when equal to [bos if add_bos] + p + [eos if add_eos])
  "as": ids for add_special=true,  parse_special=true   (omitted when equal to the same wrapping of ps)
  "d":  llama_detokenize(p, remove_special=false, unparse_special=false)
  "ds": llama_detokenize(as, remove_special=false, unparse_special=true)
Text that is not valid UTF-8 is written as {"hex": "..."}; corpus lines use the same convention.
"""
import argparse
import ctypes
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizer"
VOCABS = ["llama-bpe", "qwen2", "gpt-2", "llama-spm", "phi-3", "starcoder", "smollm"]
BLOCK = 4096


def read_corpus(path: Path) -> list:
    lines = []
    for raw in path.read_text(encoding="utf-8").split("\n"):
        if not raw:
            continue
        v = json.loads(raw)
        lines.append(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v.encode("utf-8"))
    return lines


def text_value(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}


class Vocab:
    def __init__(self, path: Path):
        import llama_cpp  # noqa: PLC0415

        self.lc = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: bytes, add_special: bool, parse_special: bool) -> list:
        n_max = len(text) + 8
        while True:
            buf = (self.lc.llama_token * n_max)()
            n = self.lc.llama_tokenize(self.vocab, text, len(text), buf, n_max, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            n_max = -n

    def detokenize(self, ids: list, unparse_special: bool) -> bytes:
        arr = (self.lc.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lc.llama_detokenize(self.vocab, arr, len(ids), buf, size, False, unparse_special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def piece(self, token: int, special: bool) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lc.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def piece_hashes(self) -> list:
        out = []
        for start in range(0, self.n_vocab, BLOCK):
            h = 0xCBF29CE484222325
            for t in range(start, min(start + BLOCK, self.n_vocab)):
                for special in (True, False):
                    p = self.piece(t, special)
                    for byte in len(p).to_bytes(4, "little") + p:
                        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
            out.append(f"{h:016x}")
        return out


def write_golden(name: str, path: Path, corpus: list) -> None:
    import llama_cpp  # noqa: PLC0415

    v = Vocab(path)
    lc = v.lc
    bos, eos, eot = lc.llama_vocab_bos(v.vocab), lc.llama_vocab_eos(v.vocab), lc.llama_vocab_eot(v.vocab)
    add_bos, add_eos = bool(lc.llama_vocab_get_add_bos(v.vocab)), bool(lc.llama_vocab_get_add_eos(v.vocab))
    header = {
        "vocab": name, "llama_cpp_python": llama_cpp.__version__, "n_vocab": v.n_vocab,
        "bos": bos, "eos": eos, "eot": eot, "add_bos": add_bos, "add_eos": add_eos,
        "eog": [t for t in range(v.n_vocab) if lc.llama_vocab_is_eog(v.vocab, t)],
        "piece_hashes": v.piece_hashes(),
    }

    def wrap(ids):
        return ([bos] if add_bos else []) + ids + ([eos] if add_eos else [])

    lines = [json.dumps(header)]
    for text in corpus:
        p = v.tokenize(text, False, False)
        ps = v.tokenize(text, False, True)
        a = v.tokenize(text, True, False)
        a_s = v.tokenize(text, True, True)
        rec = {"p": p}
        if ps != p:
            rec["ps"] = ps
        if a != wrap(p):
            rec["a"] = a
        if a_s != wrap(ps):
            rec["as"] = a_s
        rec["d"] = text_value(v.detokenize(p, False))
        rec["ds"] = text_value(v.detokenize(a_s, True))
        lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    out = FIXTURES / f"{name}.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{out}: {len(corpus)} lines")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--vocab-dir", type=Path, default=ROOT / "models" / "vocab")
    ap.add_argument("--only", nargs="*", help="vocabulary names to regenerate (gemma3 = the model)")
    args = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401, PLC0415
    except ImportError:
        print("error: llama-cpp-python is not installed; see this script's docstring", file=sys.stderr)
        return 1
    corpus = read_corpus(FIXTURES / "corpus.jsonl")
    targets = [("gemma3", args.model)] + [(n, args.vocab_dir / f"ggml-vocab-{n}.gguf") for n in VOCABS]
    for name, path in targets:
        if args.only and name not in args.only:
            continue
        if not path.is_file():
            print(f"error: {path} is missing (run tools/fetch_model.py / tools/fetch_vocabs.py)", file=sys.stderr)
            return 1
        write_golden(name, path, corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
