#!/usr/bin/env bash
# Create (if missing) a venv for the sentence-transformers peer and install its
# pinned requirements. Idempotent. The last stdout line is the venv's python path.
#
# PyPI has no CPU-only torch for Linux x86_64: the torch wheel there is the CUDA
# build and its hard dependencies (nvidia-*, cuda-toolkit, triton) come along,
# about 5.5 GB installed. Without them `import torch` fails (libtorch_cpu.so
# itself links libcudart/libcupti), so there is no lighter PyPI-only install.
# Where the PyTorch CPU index is reachable, set ST_TORCH_INDEX to it to get the
# +cpu build instead (torch is then installed from there first, and the nvidia
# packages are not pulled in).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ST_VENV:-/tmp/cw-st-venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" >&2
fi

if [ -n "${ST_TORCH_INDEX:-}" ]; then
    TORCH_PIN="$(grep -E '^torch==' "$HERE/requirements.txt")"
    "$PY" -m pip install --quiet --disable-pip-version-check \
        --index-url "$ST_TORCH_INDEX" "${TORCH_PIN}+cpu" >&2
    # Keep the +cpu build: the pin in requirements.txt is satisfied by it.
fi

# pip is a no-op when the pinned versions are already installed.
"$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2

echo "$PY"
