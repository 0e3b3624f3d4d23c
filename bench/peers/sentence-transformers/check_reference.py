#!/usr/bin/env python3
"""Recompute the reference fixture without sentence-transformers or torch.

A plain float64 numpy BERT forward pass over model.safetensors, with the
`tokenizers` library reading tokenizer.json (its own truncation 128 / padding
128 replaced by truncation 256, no padding), token_type_ids 0, mean pooling
over all tokens, L2 normalisation. Checks every item's "tokens" exactly and
its vector to --tol (max abs difference). This is the algorithm a
reimplementation has to follow.

    $PY check_reference.py --model DIR --fixture tests/fixtures/minilm_reference.json

Needs numpy, scipy (erf), safetensors and tokenizers: all in the setup.sh venv.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import tokenizers
from safetensors.numpy import load_file
from scipy.special import erf


def main() -> int:
    ap = argparse.ArgumentParser(description="check the MiniLM reference fixture with numpy")
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    doc = json.load(open(args.fixture, encoding="utf-8"))
    max_len = doc["max_seq_length"]
    w = load_file(os.path.join(args.model, "model.safetensors"))
    pre = "" if "embeddings.word_embeddings.weight" in w else "bert."

    def g(k):
        return w[pre + k].astype(np.float64)

    cfg = json.load(open(os.path.join(args.model, "config.json")))
    heads, layers, hidden = cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["hidden_size"]
    eps = cfg["layer_norm_eps"]
    hd = hidden // heads

    tok = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)

    def ln(x, wt, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * wt + b

    def embed(text):
        ids = np.array(tok.encode(text).ids)
        n = len(ids)
        x = (g("embeddings.word_embeddings.weight")[ids]
             + g("embeddings.position_embeddings.weight")[:n]
             + g("embeddings.token_type_embeddings.weight")[0])
        x = ln(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
        for layer in range(layers):
            p = f"encoder.layer.{layer}."

            def lin(y, k):
                return y @ g(p + k + ".weight").T + g(p + k + ".bias")

            q, k, v = (lin(x, f"attention.self.{m}").reshape(n, heads, hd).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = ln(lin(a, "attention.output.dense") + x,
                   g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"))
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))  # exact (erf) GELU
            x = ln(lin(h, "output.dense") + x,
                   g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"))
        e = x.mean(0)
        return e / np.linalg.norm(e), n

    worst, bad = 0.0, 0
    for i, it in enumerate(doc["items"]):
        e, n = embed(it["text"])
        diff = float(np.abs(e - np.array(it["vector"])).max())
        worst = max(worst, diff)
        if n != it["tokens"] or diff > args.tol:
            bad += 1
            print(f"item {i}: tokens {n} vs {it['tokens']}, max diff {diff:.2e}: {it['text'][:60]!r}",
                  file=sys.stderr)
    print(f"{len(doc['items'])} items, {bad} bad, max abs diff {worst:.2e} (tol {args.tol:g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
