#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI document, with schemathesis.
#
#   scripts/schemathesis.sh BASE_URL TOKEN [extra schemathesis run options...]
#   scripts/schemathesis.sh http://127.0.0.1:8080 "$ADMIN_TOKEN"
#
# Loads BASE_URL/api/v1/openapi.json and sends every request, with `Authorization: Bearer TOKEN`,
# to BASE_URL only (the document's `servers` host, if any, is replaced by BASE_URL's origin; its
# path is kept). Only these checks run:
#   not_a_server_error            no 5xx, whatever the input (also on invalid input)
#   status_code_conformance       every status answered is documented for that operation
#   content_type_conformance      every Content-Type answered is documented for that status
#   response_schema_conformance   every JSON body matches the documented schema
# So a documented 4xx on valid input passes (positive_data_acceptance is off), and so does a 2xx
# on invalid input (negative_data_rejection is off). The run also fails when every request of
# some operation was answered 401/403 (a wrong TOKEN would otherwise pass vacuously).
# /api/v1/events/stream (SSE, never ends) is left out; more options, e.g. --exclude-path P, may follow
# TOKEN (TOKEN must be an admin's: admin-only operations answering only 403 fail the run).
# Exit code: schemathesis's own (0: no failure; 1: a failure or a failing warning), 2 on usage.
#
# Environment:
#   SCHEMATHESIS           the schemathesis executable (default: the venv scripts/test.sh makes,
#                          ${XDG_CACHE_HOME:-$HOME/.cache}/chatter-worker/schemathesis-venv)
#   MAX_EXAMPLES=30        test cases per operation and phase (--max-examples)
#   SEED=42                --seed (schemathesis prints it; rerun with the same one to reproduce)
#   WORKERS=1              concurrent requests (--workers); more than 1 sometimes dies inside
#                          hypothesis 6 ("AST constructor recursion depth mismatch", a race in its
#                          lambda-source cache): a tool error, not a finding
#   PHASES                 e.g. "coverage,fuzzing" (default: all: examples,coverage,fuzzing,stateful)
#   SCHEMATHESIS_TIMEOUT=600  seconds before the whole run is killed (exit 124)
#   KEEP=1                 keep the work dir (crash files for `st replay`, reports) and print it
set -euo pipefail

if [[ $# -lt 2 || -z $1 || -z $2 ]]; then
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
BASE_URL=${1%/}
TOKEN=$2
shift 2

if [[ ! $BASE_URL =~ ^(https?://[^/]+) ]]; then
    echo "schemathesis.sh: BASE_URL must be http(s)://HOST:PORT, got: $BASE_URL" >&2
    exit 2
fi
ORIGIN=${BASH_REMATCH[1]}

VENV="${XDG_CACHE_HOME:-$HOME/.cache}/chatter-worker/schemathesis-venv"
ST=${SCHEMATHESIS:-$VENV/bin/schemathesis}
if [[ ! -x $ST ]]; then
    echo "schemathesis.sh: $ST not found: run CW_INSTALL_ONLY=1 SKIP_LINT=1 scripts/test.sh first (or set SCHEMATHESIS)" >&2
    exit 2
fi

# Run in a scratch dir: schemathesis and Hypothesis write .schemathesis/ and .hypothesis/ into the
# working directory, and a schemathesis.toml found there or above would change the run.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cw-schemathesis.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
    trap 'echo "schemathesis.sh: work dir kept: $WORK" >&2' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
cat >"$WORK/schemathesis.toml" <<'TOML'
# Fail the run when an operation got only 401/403 answers (wrong or missing token).
[warnings]
fail-on = ["missing_auth"]
TOML

# shellcheck disable=SC2054 # the commas separate the --checks value, not array elements
args=(
    --config-file "$WORK/schemathesis.toml"
    run "$BASE_URL/api/v1/openapi.json"
    --origin "$ORIGIN"
    --header "Authorization: Bearer $TOKEN"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
    --max-examples "${MAX_EXAMPLES:-30}"
    --seed "${SEED:-42}"
    --workers "${WORKERS:-1}"
    --generation-database none
    --request-timeout 10
    --wait-for-schema 30
    --no-color
    # an endless text/event-stream: every request would run into the request timeout
    --exclude-path /api/v1/events/stream
)
[[ -n ${PHASES:-} ]] && args+=(--phases "$PHASES")

# The command line, with the token masked.
printf 'schemathesis.sh: %s' "$ST" >&2
for a in "${args[@]}" "$@"; do
    [[ $a == "Authorization: Bearer $TOKEN" ]] && a="Authorization: Bearer ***"
    printf ' %q' "$a" >&2
done
printf '\n' >&2

cd "$WORK"
status=0
timeout --kill-after=10 "${SCHEMATHESIS_TIMEOUT:-600}" "$ST" "${args[@]}" "$@" || status=$?
if [[ $status -eq 124 ]]; then
    echo "schemathesis.sh: gave up after ${SCHEMATHESIS_TIMEOUT:-600}s" >&2
fi
exit "$status"
