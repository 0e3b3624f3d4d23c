#!/usr/bin/env python3
"""Make a JSONL file of ~1250-character English prose chunks for embed.py.

Standard library only. Reads the Node.js API docs that Debian's nodejs package
installs (/usr/share/doc/nodejs/api/*.md, sorted by name), keeps the prose
paragraphs (fenced code blocks, tables, HTML comments, headings and YAML
front matter are dropped; markdown links become their text, backticks go),
joins them with blank lines and cuts the result into pieces of about
--chars characters, ending each piece at a word boundary. With the default
1250 characters a chunk is about 256 cl100k tokens (218-335, median 258 on
Debian 12's nodejs docs), i.e. about 295 BERT word-pieces, so most chunks are
cut at max_seq_length 256 by the embedder.

    python3 make_chunks.py --out /tmp/st_chunks.jsonl --count 500

Each output line is {"text": "..."}.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

LINK = re.compile(r"\[([^\]]*)\]\[[^\]]*\]|\[([^\]]*)\]\([^)]*\)")


def paragraphs(path: str):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    in_code = False
    in_comment = False
    para: list[str] = []
    for line in lines:
        s = line.strip()
        if s.startswith("```"):
            in_code = not in_code
            if para:
                yield " ".join(para)
            para = []
            continue
        if in_code:
            continue
        if s.startswith("<!--"):
            in_comment = "-->" not in s
            if para:
                yield " ".join(para)
            para = []
            continue
        if in_comment:
            in_comment = "-->" not in s
            continue
        if not s or s.startswith(("#", "|", "[", ">", "<")) or s.startswith("    "):
            if para:
                yield " ".join(para)
            para = []
            continue
        para.append(s)
    if para:
        yield " ".join(para)


def clean(p: str) -> str:
    p = LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), p)
    p = p.replace("`", "").replace("**", "").replace("\\", "")
    return re.sub(r"\s+", " ", p).strip()


def is_prose(p: str) -> bool:
    if len(p) < 80:
        return False
    letters = sum(c.isalpha() or c == " " for c in p)
    return letters / len(p) >= 0.85


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="/usr/share/doc/nodejs/api")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--chars", type=int, default=1250)
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.src, "*.md")))
    if not files:
        print(f"no *.md files under {args.src}", file=sys.stderr)
        return 1
    text = "\n\n".join(
        c for path in files for p in paragraphs(path) if is_prose(c := clean(p))
    )
    chunks = []
    pos = 0
    while len(chunks) < args.count and pos < len(text):
        end = pos + args.chars
        if end < len(text):
            cut = text.rfind(" ", pos + args.chars // 2, end)
            end = cut if cut > pos else end
        piece = text[pos:end].strip()
        if piece:
            chunks.append(piece)
        pos = end
    with open(args.out, "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps({"text": c}, ensure_ascii=False) + "\n")
    print(f"{len(chunks)} chunks, {sum(map(len, chunks))} chars from {len(files)} files -> {args.out}",
          file=sys.stderr)
    return 0 if len(chunks) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
