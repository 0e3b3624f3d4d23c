#!/usr/bin/env bash
# Load test of the HTTP API's enqueue route with wrk (Debian's package, installed when missing):
#
#   scripts/bench-api.sh [BASE_URL [TOKEN]]      # or BASE_URL=... TOKEN=... scripts/bench-api.sh
#
# wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, POSTing $BODY (Content-Type: application/json,
# Authorization: Bearer $TOKEN) to $BASE_URL$ENDPOINT. wrk's report goes to stdout, then one JSON
# line closes the output:
#   {"requests":N,"duration_s":S,"requests_per_s":R,"latency_ms":{"mean":..,"p50":..,"p90":..,
#    "p99":..,"max":..},"errors":{"non_2xx_3xx":N,"connect":N,"read":N,"write":N,"timeout":N}}
# Exit code 1 when the preflight request or any load request failed (non-2xx/3xx answer, socket
# error, timeout) or none was made, unless ALLOW_ERRORS=1: a run that measured 401s or 422s
# measures nothing. Exit code 2: bad arguments.
#
# Environment (defaults): BASE_URL, TOKEN, BODY ({"function_name":"ping","kwargs":{}}),
# ENDPOINT (/api/v1/jobs), DURATION (15, seconds), THREADS (2), CONNECTIONS (64),
# REQUEST_TIMEOUT (10, seconds). Only loopback targets (127.0.0.0/8, localhost, [::1]) unless
# ALLOW_NON_LOOPBACK=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_URL=${1:-${BASE_URL:-}}
TOKEN=${2:-${TOKEN:-}}
export TOKEN
export BODY=${BODY:-'{"function_name":"ping","kwargs":{}}'}
ENDPOINT=${ENDPOINT:-/api/v1/jobs}
DURATION=${DURATION:-15}
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"

die() { printf 'bench-api.sh: %s\n' "$*" >&2; exit 2; }

[[ -n $BASE_URL ]] || die "usage: scripts/bench-api.sh BASE_URL [TOKEN] (or BASE_URL/TOKEN in the environment)"
BASE_URL=${BASE_URL%/}
[[ $BASE_URL =~ ^https?://(\[[^]]+\]|[^:/]+) ]] || die "BASE_URL must be http(s)://HOST:PORT, got: $BASE_URL"
host=${BASH_REMATCH[1]}
if [[ ${ALLOW_NON_LOOPBACK:-0} != 1 && ! $host =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])$ ]]; then
    die "$host is not a loopback address (set ALLOW_NON_LOOPBACK=1 to load another host)"
fi
[[ -n $TOKEN ]] || echo "bench-api.sh: warning: no TOKEN: requests go without Authorization" >&2

if ! command -v wrk >/dev/null 2>&1; then
    echo "==> installing wrk" >&2
    sudo=()
    [[ $EUID -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

URL="$BASE_URL$ENDPOINT"
# One request first: a wrong token, body or route fails here, before the load.
if command -v curl >/dev/null 2>&1; then
    auth=()
    [[ -n $TOKEN ]] && auth=(-H "Authorization: Bearer $TOKEN")
    resp=$(mktemp)
    code=$(curl -sS -o "$resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' "${auth[@]}" \
        --data-binary "$BODY" --max-time 10 "$URL") || code=000
    echo "==> preflight: POST $URL -> HTTP $code" >&2
    if [[ ! $code =~ ^[23] && ${ALLOW_ERRORS:-0} != 1 ]]; then
        head -c 600 "$resp" >&2
        echo >&2
        rm -f "$resp"
        echo "bench-api.sh: the preflight request failed (HTTP $code)" >&2
        exit 1
    fi
    rm -f "$resp"
fi

echo "==> wrk -t${THREADS:-2} -c${CONNECTIONS:-64} -d$DURATION --latency POST $URL" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
wrk -t"${THREADS:-2}" -c"${CONNECTIONS:-64}" -d"$DURATION" --latency --timeout "${REQUEST_TIMEOUT:-10}s" \
    -s "$ROOT/scripts/wrk-post.lua" "$URL" | tee "$out"

json=$(tail -n 1 "$out")
python3 - "$json" "${ALLOW_ERRORS:-0}" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
bad = sum(r["errors"].values())
if r["requests"] == 0 or (bad and sys.argv[2] != "1"):
    print(f"bench-api.sh: {bad} of {r['requests']} requests failed: {r['errors']}", file=sys.stderr)
    sys.exit(1)
PY
