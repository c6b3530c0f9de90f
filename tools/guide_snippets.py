#!/usr/bin/env python3
"""Extract the C blocks of a Markdown file into one source file each, for the build to compile.

usage: guide_snippets.py GUIDE.md OUT_DIR
Writes OUT_DIR/<stem>_NN.c for every ```c block (NN from 01) and prints one line per block:
"<path> main" when the block defines main(), "<path> lib" otherwise. Files are rewritten only when their text
changed, so an unchanged guide rebuilds nothing.
"""
import os
import re
import sys


def blocks(text):
    """Yield (line number, code) for each fenced ```c block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```c":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise SystemExit(f"unterminated ```c block at line {i + 1}")
            yield start, "\n".join(lines[start:j]) + "\n"
            i = j
        i += 1


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: guide_snippets.py GUIDE.md OUT_DIR")
    guide, out_dir = sys.argv[1], sys.argv[2]
    with open(guide, encoding="utf-8") as f:
        text = f.read()
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(guide))[0].lower()
    for n, (line, code) in enumerate(blocks(text), 1):
        path = os.path.join(out_dir, f"{stem}_{n:02d}.c")
        body = f'#line {line} "{os.path.abspath(guide)}"\n' + code
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old != body:
            with open(path, "w", encoding="utf-8") as f:
                f.write(body)
        kind = "main" if re.search(r"\bint\s+main\s*\(", code) else "lib"
        print(f"{path} {kind}")


if __name__ == "__main__":
    main()
