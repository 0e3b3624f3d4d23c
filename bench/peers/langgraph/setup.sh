#!/usr/bin/env bash
# Create (if missing) a venv for the langgraph peer and install its pinned
# requirements. Idempotent. The last stdout line is the venv's python path.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LG_VENV:-/tmp/cw-langgraph-venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" >&2
fi

# pip is a no-op when the pinned versions are already installed.
"$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2

echo "$PY"
