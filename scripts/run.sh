#!/usr/bin/env bash
# Run the worker (every queue) against REDIS_URL and DATABASE_URL, or against a throwaway Redis
# and PostgreSQL 15 on loopback that this script installs (Debian) when missing, starts, and stops
# on exit. The database gets its tables (`run --migrate`), so documents can be chunked and
# embedded (the local model, fetched once by scripts/fetch-model.sh) at once:
# `chatter-worker ingest FILES --wait`, then `chatter-worker search "..."`, with the URLs and
# storage root the script prints.
# Extra arguments go to `chatter-worker run` (e.g. --concurrency 32). /metrics: 127.0.0.1:9464.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=/usr/lib/postgresql/15/bin
cleanup_steps=()
cleanup() { for step in "${cleanup_steps[@]}"; do eval "$step" || true; done; }
trap cleanup EXIT
# A signal ends the script through its EXIT trap (bash alone would die without running it).
trap 'exit 143' TERM
trap 'exit 130' INT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
apt_install() {
  echo "==> installing $*" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
as_pg() { if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

if [[ -z "${REDIS_URL:-}" ]]; then
  command -v redis-server >/dev/null || apt_install redis-server
  port=$(free_port)
  dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  cleanup_steps+=("kill \$(cat '$dir/redis.pid') 2>/dev/null; rm -rf '$dir'")
  export REDIS_URL="redis://127.0.0.1:$port/"
  echo "==> Redis on $REDIS_URL (stopped when this script exits)" >&2
fi
if [[ -z "${DATABASE_URL:-}" ]]; then
  # PostgreSQL 15 and pgvector (built from Debian source: bookworm has no binary package).
  [[ -x $PG_BIN/initdb && -f /usr/share/postgresql/15/extension/vector.control ]] \
    || SKIP_LINT=1 CW_INSTALL_ONLY=1 CW_SKIP_TEST_TOOLS=1 scripts/test.sh
  pgport=$(free_port)
  pgdir=$(mktemp -d /tmp/cw-run-pg.XXXXXX)
  [[ $EUID -eq 0 ]] && chown postgres "$pgdir"
  as_pg "$PG_BIN/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -o "-p $pgport -c listen_addresses=127.0.0.1 -k $pgdir" \
    -l "$pgdir/pg.log" -w start >/dev/null
  cleanup_steps+=("as_pg '$PG_BIN/pg_ctl' -D '$pgdir/data' -m fast -w stop >/dev/null; rm -rf '$pgdir'")
  export DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
  echo "==> PostgreSQL on $DATABASE_URL (stopped when this script exits)" >&2
fi
export CW_STORAGE_ROOT="${CW_STORAGE_ROOT:-$PWD}"
# The local embedding model (all-MiniLM-L6-v2, int8 on ONNX Runtime: 3x candle's F32 speed in
# half the memory; `scripts/fetch-model.sh f32` for the exact one), unless a provider is configured.
if [[ -z "${CW_MODEL_DIR:-}" && -z "${CW_CONFIG:-}" ]]; then
  export CW_MODEL_DIR="$(scripts/fetch-model.sh int8)"
fi
echo "    try: REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL CW_STORAGE_ROOT=$CW_STORAGE_ROOT \\" >&2
echo "         target/release/chatter-worker ingest README.md docs --wait" >&2
echo "    then: ... target/release/chatter-worker search \"how are retries scheduled\" --model-dir \$CW_MODEL_DIR" >&2
cargo build --release --quiet
# In the background so a signal reaches this script at once: it is passed on, the worker drains,
# then the services stop.
target/release/chatter-worker run --migrate "$@" &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker; exit 143' TERM
trap 'kill -INT $worker 2>/dev/null; wait $worker; exit 130' INT
wait $worker
