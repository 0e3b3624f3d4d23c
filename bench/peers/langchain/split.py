#!/usr/bin/env python3
"""Python peer for the text-chunking benchmark.

Splits every file of a corpus with langchain-text-splitters'
RecursiveCharacterTextSplitter, sizing chunks in tiktoken cl100k_base tokens,
and reports throughput of the median round.

    split.py --corpus DIR --max-tokens N --overlap M [--rounds R]
             [--limit-bytes B] [--bpe-file PATH] [--json]

The cl100k_base BPE file is loaded from disk (no network): by default the copy
shipped in the tiktoken-rs crate in the local cargo registry.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import stat
import statistics
import sys
import time

import tiktoken
import tiktoken.load
from langchain_text_splitters import RecursiveCharacterTextSplitter

SYSTEM = "langchain-text-splitters 1.1.3 RecursiveCharacterTextSplitter"
TOKENIZER = "cl100k_base"
BPE_FILE_NAME = "cl100k_base.tiktoken"
# sha256 of cl100k_base.tiktoken as published by OpenAI (also what tiktoken checks).
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# Fallback copies of tiktoken_ext.openai_public.cl100k_base() (tiktoken 0.14.0),
# only used if that function cannot be called with a local BPE file.
_FALLBACK_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_FALLBACK_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def _version_key(path: str) -> tuple:
    """Sort key for .../tiktoken-rs-X.Y.Z[-pre]/assets/...: numeric X.Y.Z."""
    m = re.search(r"tiktoken-rs-(\d+)\.(\d+)\.(\d+)([^/]*)", path)
    if not m:
        return (-1, -1, -1, 0, path)
    major, minor, patch, pre = m.groups()
    # A release sorts above its pre-releases.
    return (int(major), int(minor), int(patch), 0 if pre else 1, path)


def default_bpe_file() -> str | None:
    cargo_home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    pattern = os.path.join(cargo_home, "registry", "src", "*", "tiktoken-rs-*", "assets", BPE_FILE_NAME)
    found = [p for p in glob.glob(pattern) if os.path.isfile(p)]
    if not found:
        return None
    return max(found, key=_version_key)


def _load_ranks(path: str) -> dict[bytes, int]:
    """tiktoken.load.load_tiktoken_bpe(path), after checking the file's sha256
    is the published cl100k_base one (the check tiktoken itself makes)."""
    import hashlib

    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise SystemExit(f"error: cannot read BPE file: {e}")
    if digest != CL100K_SHA256:
        raise SystemExit(f"error: {path} is not cl100k_base.tiktoken "
                         f"(sha256 {digest}, expected {CL100K_SHA256})")
    # load_tiktoken_bpe would otherwise copy a local file into its download
    # cache (keyed by path); disable caching for this call.
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        return tiktoken.load.load_tiktoken_bpe(path)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


def load_cl100k(path: str) -> tiktoken.Encoding:
    """cl100k_base built from a local BPE file, offline.

    pat_str and special tokens come from tiktoken_ext.openai_public.cl100k_base()
    itself, with its remote load_tiktoken_bpe call redirected to the ranks
    already loaded from the local file. If that is not possible (tiktoken's
    layout changed), a verbatim copy of the same constants is used.
    """
    ranks = _load_ranks(path)
    pat_str, special_tokens = _FALLBACK_PAT_STR, dict(_FALLBACK_SPECIAL_TOKENS)
    try:
        from tiktoken_ext import openai_public

        original = openai_public.load_tiktoken_bpe

        def local_load(url, expected_hash=None):
            if not url.endswith("/" + BPE_FILE_NAME) or expected_hash not in (None, CL100K_SHA256):
                raise RuntimeError(f"unexpected BPE request {url} {expected_hash}")
            return ranks

        openai_public.load_tiktoken_bpe = local_load
        try:
            params = openai_public.cl100k_base()
        finally:
            openai_public.load_tiktoken_bpe = original
        pat_str, special_tokens = params["pat_str"], params["special_tokens"]
    except Exception as e:  # only if tiktoken's layout changes
        print(f"warning: tiktoken_ext.openai_public.cl100k_base unusable ({e}); "
              "using copied constants", file=sys.stderr)

    enc = tiktoken.Encoding(
        name="cl100k_base",
        pat_str=pat_str,
        mergeable_ranks=ranks,
        special_tokens=special_tokens,
    )
    got = enc.encode("hello world")
    if got != [15339, 1917]:
        raise SystemExit(f"error: cl100k_base sanity check failed: encode('hello world') = {got}")
    return enc


def read_corpus(root: str, limit_bytes: int | None) -> tuple[list[str], int]:
    """All regular files under root (recursive, sorted by path), decoded as
    UTF-8 with errors='replace'. Returns (texts, total UTF-8 bytes of texts).
    With limit_bytes, stops after the file that reaches the limit."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                if stat.S_ISREG(os.lstat(p).st_mode):  # skip symlinks, fifos, ...
                    paths.append(p)
            except OSError:
                pass
    paths.sort()

    texts: list[str] = []
    total = 0
    for p in paths:
        if limit_bytes is not None and total >= limit_bytes:
            break
        with open(p, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        texts.append(text)
        # Bytes of the text actually split (== file size for valid UTF-8).
        total += len(text.encode("utf-8"))
    return texts, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="directory of text files (recursive)")
    ap.add_argument("--max-tokens", type=int, required=True, help="chunk_size in cl100k_base tokens")
    ap.add_argument("--overlap", type=int, required=True, help="chunk_overlap in cl100k_base tokens")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds; the median round is reported")
    ap.add_argument("--limit-bytes", type=int, default=None,
                    help="only take files (in path order) until this many bytes are reached")
    ap.add_argument("--bpe-file", default=None,
                    help="path to cl100k_base.tiktoken (default: newest tiktoken-rs-*/assets/ in the cargo registry)")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args()

    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not os.path.isdir(args.corpus):
        ap.error(f"--corpus {args.corpus!r} is not a directory")

    bpe_file = args.bpe_file or default_bpe_file()
    if bpe_file is None:
        ap.error("no --bpe-file given and no ~/.cargo/registry/src/*/tiktoken-rs-*/assets/"
                 + BPE_FILE_NAME + " found")
    enc = load_cl100k(bpe_file)

    # Equivalent to RecursiveCharacterTextSplitter.from_tiktoken_encoder(
    #     encoding_name="cl100k_base", disallowed_special=(), chunk_size=N, chunk_overlap=M):
    # from_tiktoken_encoder only wraps len(enc.encode(t, allowed_special=set(),
    # disallowed_special=...)) as length_function and passes the kwargs through.
    # (With its default disallowed_special="all" it would raise on text containing
    # e.g. "<|endoftext|>"; () encodes such text as ordinary text instead, and
    # gives identical counts for all other text.) We build it by hand only because
    # tiktoken.get_encoding("cl100k_base") would try to download the BPE file.
    def length_function(t: str) -> int:
        return len(enc.encode(t, disallowed_special=()))

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=args.max_tokens,
        chunk_overlap=args.overlap,
        length_function=length_function,
    )

    texts, total_bytes = read_corpus(args.corpus, args.limit_bytes)

    round_seconds: list[float] = []
    chunks: list[str] = []
    n_chunks = None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        out: list[str] = []
        for text in texts:
            out.extend(splitter.split_text(text))
        dt = time.perf_counter() - t0
        round_seconds.append(dt)
        if n_chunks is not None and len(out) != n_chunks:
            raise SystemExit(f"error: rounds disagree on chunk count ({len(out)} != {n_chunks})")
        n_chunks = len(out)
        chunks = out

    # median_low: the reported time is one actually measured round.
    seconds = statistics.median_low(round_seconds)
    max_chunk_tokens = max((length_function(c) for c in chunks), default=0)

    result = {
        "system": SYSTEM,
        "tokenizer": TOKENIZER,
        "files": len(texts),
        "bytes": total_bytes,
        "chunks": n_chunks,
        "seconds": round(seconds, 6),
        "mb_per_s": round(total_bytes / 1e6 / seconds, 4) if seconds > 0 else None,
        "chunks_per_s": round(n_chunks / seconds, 2) if seconds > 0 else None,
        "max_chunk_tokens": max_chunk_tokens,
        "max_tokens": args.max_tokens,
        "overlap": args.overlap,
        "rounds": args.rounds,
        "round_seconds": [round(s, 6) for s in round_seconds],
    }
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"{SYSTEM} / {TOKENIZER} (bpe: {bpe_file})")
        print(f"corpus:  {args.corpus}: {result['files']} files, {total_bytes} bytes")
        print(f"params:  max_tokens={args.max_tokens} overlap={args.overlap} rounds={args.rounds}")
        print(f"chunks:  {n_chunks} (max {max_chunk_tokens} tokens)")
        print(f"time:    {seconds:.3f} s median round "
              f"({', '.join(f'{s:.3f}' for s in round_seconds)})")
        print(f"speed:   {result['mb_per_s']} MB/s, {result['chunks_per_s']} chunks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
