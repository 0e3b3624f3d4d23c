#!/usr/bin/env bash
# Run the worker (every queue) against REDIS_URL, or against a throwaway Redis on loopback that
# this script installs (Debian) when missing, starts, and stops on exit. Extra arguments go to
# `chatter-worker run` (e.g. --concurrency 32). /metrics is served on 127.0.0.1:9464.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${REDIS_URL:-}" ]]; then
  if ! command -v redis-server >/dev/null; then
    echo "==> installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
  export REDIS_URL="redis://127.0.0.1:$port/"
  echo "==> Redis on $REDIS_URL (stopped when this script exits)" >&2
  echo "    try: REDIS_URL=$REDIS_URL target/release/chatter-worker enqueue sleep --args '{\"ms\": 500}'" >&2
fi
cargo build --release --quiet
target/release/chatter-worker run "$@"
