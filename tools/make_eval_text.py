#!/usr/bin/env python3
"""Write the perplexity evaluation text (bench/data/eval/python_topics.txt).

The text is the help topics of the Python documentation as CPython ships them in its standard library
(`pydoc_data.topics`, the language reference and library chapters that `help("TOPIC")` prints;
Python Software Foundation License). English prose with code examples, about 110k tokens for Gemma 3.
The topics are written in sorted order, each as its plain text, separated by one blank line; lines lose
trailing spaces and the file ends with one newline. The text depends on the Python version, which the
README beside the file records; the committed file is the reference, this script says how it was made.

Usage: python tools/make_eval_text.py [--out PATH]
"""
import argparse
import sys
from pathlib import Path

import pydoc_data.topics

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "data" / "eval" / "python_topics.txt"


def build_text() -> str:
    parts = []
    for key in sorted(pydoc_data.topics.topics):
        body = "\n".join(line.rstrip() for line in pydoc_data.topics.topics[key].strip().splitlines())
        parts.append(body)
    return "\n\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    text = build_text()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    v = sys.version_info
    print(f"{args.out}: {len(text)} characters from Python {v.major}.{v.minor}.{v.micro} pydoc_data.topics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
