#!/usr/bin/env python3
"""Fetch llama.cpp's vocabulary-only GGUF files (ggml-vocab-*.gguf) into models/vocab/.

They ship inside the llama-cpp-python source distribution on PyPI (vendor/llama.cpp/models/).
This script downloads that sdist with pip (cached in models/vocab/.pip/), extracts the files
listed in VOCABS, and checks each against the sha256 recorded below. Files already present and
verified are reused.

llama.cpp has no vocabulary file for the `smollm` pre-tokenizer; ggml-vocab-smollm.gguf is derived
here from gpt-2's vocabulary with tokenizer.ggml.pre set to "smollm" (needs the `gguf` package). The
derived file is not a real SmolLM vocabulary: it exercises the smollm pre-tokenizer (digits split
one by one before the GPT-2 regex) on a BPE vocabulary that has multi-digit tokens.

Usage: python tools/fetch_vocabs.py [--out DIR]
Prints the vocabulary directory on the last line.
"""
import argparse
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
MEMBER_DIR = "llama_cpp_python-0.3.36/vendor/llama.cpp/models"
VOCABS = {
    "llama-bpe": "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
    "qwen2": "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c",
    "gpt-2": "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac",
    "llama-spm": "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    "phi-3": "967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326",
    "starcoder": "fedb892b4e1bd3c1f2fcdae356440b14fb458f4264d586e5c987ed93df4e174d",
}
DERIVED = {"smollm": ("gpt-2", "smollm")}  # name: (source vocab, tokenizer.ggml.pre)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def vocab_path(out: Path, name: str) -> Path:
    return out / f"ggml-vocab-{name}.gguf"


def fetch_sdist(out: Path) -> Path:
    pip_dir = out / ".pip"
    sdist = pip_dir / SDIST_FILE
    if sdist.is_file() and sha256_of(sdist) == SDIST_SHA256:
        return sdist
    pip_dir.mkdir(parents=True, exist_ok=True)
    print(f"downloading {SDIST} (source distribution) from PyPI ...", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", SDIST, "-d", str(pip_dir)]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError(f"pip could not download {SDIST}")
    if not sdist.is_file() or sha256_of(sdist) != SDIST_SHA256:
        raise RuntimeError(f"{sdist} missing or does not match sha256 {SDIST_SHA256}")
    return sdist


def derive(out: Path, name: str, source: str, pre: str) -> None:
    import gguf  # noqa: PLC0415 (only needed for derived vocabularies)

    reader = gguf.GGUFReader(str(vocab_path(out, source)))
    tmp = vocab_path(out, name).with_suffix(".partial")
    writer = gguf.GGUFWriter(str(tmp), arch=reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = field.contents()
        if key == "tokenizer.ggml.pre":
            value = pre
        elif key == "general.name":
            value = f"{pre} (derived from {source})"
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(vocab_path(out, name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "vocab")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    missing = [n for n, sha in VOCABS.items()
               if not (vocab_path(out, n).is_file() and sha256_of(vocab_path(out, n)) == sha)]
    if missing:
        try:
            sdist = fetch_sdist(out)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        with tarfile.open(sdist) as tar:
            for name in missing:
                member = f"{MEMBER_DIR}/ggml-vocab-{name}.gguf"
                src = tar.extractfile(member)
                if src is None:
                    print(f"error: {member} not in {sdist}", file=sys.stderr)
                    return 1
                data = src.read()
                if hashlib.sha256(data).hexdigest() != VOCABS[name]:
                    print(f"error: {member} does not match sha256 {VOCABS[name]}", file=sys.stderr)
                    return 1
                vocab_path(out, name).write_bytes(data)
    for name, (source, pre) in DERIVED.items():
        if not vocab_path(out, name).is_file():
            derive(out, name, source, pre)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
