#!/usr/bin/env python3
"""Write a C file defining `const char NAME[]` with the bytes of a text file (the tp web page, kept as HTML)."""
import sys


def main() -> int:
    if len(sys.argv) != 5:
        print("usage: embed_text.py INPUT OUTPUT.c SYMBOL HEADER", file=sys.stderr)
        return 2
    source, output, symbol, header = sys.argv[1:]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    out = [f"/* Generated from {source.split('/')[-1]} by tools/embed_text.py: edit that file. */",
           f'#include "{header}"', "",
           "/* One string: longer than the 4095 bytes ISO C promises, which gcc and clang handle. */",
           '#pragma GCC diagnostic ignored "-Woverlength-strings"', "",
           f"const char {symbol}[] ="]
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        escaped = line.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'    "{escaped}\\n"')
    out[-1] += ";"
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
