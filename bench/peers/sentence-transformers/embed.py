#!/usr/bin/env python3
"""sentence-transformers peer for the embedding benchmark.

Embeds every "text" of a JSONL file with SentenceTransformer (all-MiniLM-L6-v2
from a local folder, CPU, max_seq_length 256) and reports chunks per second
for the median round. See README.md.

    $PY embed.py --model DIR --chunks FILE [--batch 32] [--rounds 3] \
        [--threads N] [--out VECTORS.json] [--json]
"""

from __future__ import annotations

import os

# Never reach for the hub: the model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import json
import platform
import statistics
import sys
import time

MAX_SEQ_LENGTH = 256


def read_chunks(path: str) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if not isinstance(obj.get("text"), str):
                raise SystemExit(f"{path}:{n}: no string field \"text\"")
            texts.append(obj["text"])
    return texts


def main() -> int:
    ap = argparse.ArgumentParser(description="sentence-transformers embedding benchmark peer")
    ap.add_argument("--model", required=True, help="local sentence-transformers model folder")
    ap.add_argument("--chunks", required=True, help='JSONL, one {"text": ...} per line')
    ap.add_argument("--batch", type=int, default=32, help="encode batch_size (default 32)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads(N) (default: torch's own, = cores)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N chunks")
    ap.add_argument("--out", default=None,
                    help="write the last round's vectors as a JSON list of lists")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object on the last stdout line")
    args = ap.parse_args()
    if args.batch < 1 or args.rounds < 1:
        ap.error("--batch and --rounds must be >= 1")

    if not os.path.isdir(args.model):
        print(f"model folder not found: {args.model}", file=sys.stderr)
        return 2

    texts = read_chunks(args.chunks)
    if args.limit is not None:
        texts = texts[: args.limit]
    if not texts:
        print(f"no chunks in {args.chunks}", file=sys.stderr)
        return 2

    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    model = SentenceTransformer(args.model, device="cpu", local_files_only=True)
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()

    def encode():
        return model.encode(texts, batch_size=args.batch, normalize_embeddings=True,
                            show_progress_bar=False, convert_to_numpy=True)

    # Warm-up (not timed): one batch-sized call, so one-off allocation and
    # oneDNN/MKL kernel selection do not land in round 1.
    model.encode(texts[: args.batch], batch_size=args.batch, normalize_embeddings=True,
                 show_progress_bar=False)

    rounds_s = []
    vectors = None
    with torch.inference_mode():
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            vectors = encode()
            rounds_s.append(time.perf_counter() - t0)

    median_s = statistics.median_low(rounds_s)
    chunks_per_s = len(texts) / median_s
    dim = int(vectors.shape[1])
    system = (f"sentence-transformers {sentence_transformers.__version__} "
              f"all-MiniLM-L6-v2 (torch {torch.__version__}, CPU)")

    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump([[float(x) for x in row] for row in vectors], f)
            f.write("\n")

    report = (
        f"system: {system}\n"
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}, "
        f"torch threads {threads}, platform {platform.platform()}\n"
        f"chunks {len(texts)}, batch {args.batch}, max_seq_length {model.max_seq_length}, "
        f"dim {dim}\n"
        f"rounds (s): {' '.join(f'{s:.3f}' for s in rounds_s)}\n"
        f"median round {median_s:.3f} s: {chunks_per_s:.1f} chunks/s, "
        f"{1000 * median_s / len(texts):.2f} ms/chunk"
    )
    print(report, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({
            "system": system,
            "chunks": len(texts),
            "rounds_s": [round(s, 6) for s in rounds_s],
            "median_s": round(median_s, 6),
            "chunks_per_s": round(chunks_per_s, 3),
            "batch": args.batch,
            "threads": threads,
            "max_seq_length": model.max_seq_length,
            "dim": dim,
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
