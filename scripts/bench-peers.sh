#!/usr/bin/env bash
# Same-machine, same-Redis comparison of chatter-worker with its peers: runs
# `chatter-worker bench queue` (chatter-worker and apalis-redis) and the same benchmark through
# BullMQ (bench/peers/bullmq/bench.mjs) alternately, ROUNDS times each, on a throwaway Redis,
# then prints the medians per system and metric and ours/BullMQ ratios.
#
#   scripts/bench-peers.sh [--jobs N] [--concurrency C] [--samples M] [--rounds R] [--out FILE]
#
# Environment (flags win): JOBS (100000), CONCURRENCY (256), SAMPLES (2000, latency samples),
# ROUNDS (3), OUT (target/bench-peers.json: every run's JSON plus the medians).
# Needs redis-server, cargo, node >= 20 and npm; runs `npm ci` in bench/peers/bullmq when its
# node_modules is missing. Redis is started with --save '' --appendonly no on a free loopback
# port, FLUSHALL'd between runs, and stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JOBS=${JOBS:-100000}
CONCURRENCY=${CONCURRENCY:-256}
SAMPLES=${SAMPLES:-2000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-target/bench-peers.json}

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --jobs) JOBS=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --samples | --latency-samples) SAMPLES=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in JOBS CONCURRENCY SAMPLES ROUNDS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || { echo "error: $v must be a positive integer" >&2; exit 2; }
done

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for c in redis-server redis-cli cargo node npm; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found"
done

# --- throwaway Redis -------------------------------------------------------------------------
STATE_DIR=$(mktemp -d /tmp/cw-bench-peers.XXXXXX)
REDIS_PID=""
REDIS_PORT=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n $REDIS_PID ]]; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
        for _ in $(seq 1 50); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    rm -rf "$STATE_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        echo "$p"
        return 0
    done
    die "could not find a free TCP port"
}

REDIS_PORT=$(free_port)
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
# in the foreground of a background job (not --daemonize): this shell reaps it
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$STATE_DIR" --logfile "$STATE_DIR/redis.log" &
REDIS_PID=$!
for i in $(seq 1 100); do
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    [[ $i -eq 100 ]] && { tail -n 30 "$STATE_DIR/redis.log" >&2; die "redis-server did not come up"; }
    sleep 0.1
done
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

# --- builds ----------------------------------------------------------------------------------
log "cargo build --release"
cargo build --release
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/chatter-worker"
[[ -x $BIN ]] || die "$BIN not found after the build"

BULLMQ_DIR="$ROOT/bench/peers/bullmq"
if [[ ! -d $BULLMQ_DIR/node_modules ]]; then
    log "npm ci (bench/peers/bullmq)"
    (cd "$BULLMQ_DIR" && npm ci --no-audit --no-fund)
fi

# --- runs ------------------------------------------------------------------------------------
RUNS="$STATE_DIR/runs.jsonl"
: >"$RUNS"

fresh_redis() {
    local n
    n=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" dbsize)
    if [[ $n != 0 ]]; then
        log "note: $n keys left in Redis by the previous run (flushed), e.g.:"
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan | head -n 5 | sed 's/^/      /' >&2 || true
    fi
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall >/dev/null
}

record() { # <round> <bench> <json file>
    node -e '
        const fs = require("fs");
        const [round, bench, file] = process.argv.slice(1);
        const out = JSON.parse(fs.readFileSync(file, "utf8"));
        fs.appendFileSync(process.argv[4], JSON.stringify({ round: +round, bench, output: out }) + "\n");
    ' "$1" "$2" "$3" "$RUNS"
}

log "jobs=$JOBS concurrency=$CONCURRENCY latency-samples=$SAMPLES rounds=$ROUNDS redis=$REDIS_URL"
for r in $(seq 1 "$ROUNDS"); do
    fresh_redis
    log "round $r/$ROUNDS: chatter-worker bench queue (chatter-worker, apalis-redis)"
    "$BIN" bench queue --jobs "$JOBS" --concurrency "$CONCURRENCY" \
        --latency-samples "$SAMPLES" --json >"$STATE_DIR/ours.json"
    cat "$STATE_DIR/ours.json" >&2
    record "$r" chatter-worker "$STATE_DIR/ours.json"

    fresh_redis
    log "round $r/$ROUNDS: BullMQ"
    node "$BULLMQ_DIR/bench.mjs" --redis "$REDIS_URL" --jobs "$JOBS" \
        --concurrency "$CONCURRENCY" --latency-samples "$SAMPLES" >"$STATE_DIR/bullmq.json"
    cat "$STATE_DIR/bullmq.json" >&2
    record "$r" bullmq "$STATE_DIR/bullmq.json"
done

# --- results and summary ---------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
REDIS_VERSION=$(redis-server --version)
export JOBS CONCURRENCY SAMPLES ROUNDS CPU_MODEL REDIS_VERSION
node - "$RUNS" "$OUT" <<'EOF'
const fs = require('fs');
const os = require('os');
const [runsFile, outFile] = process.argv.slice(2);
const runs = fs.readFileSync(runsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

// Every system result of every run, with its round.
const results = [];
for (const run of runs) {
  const list = run.bench === 'bullmq' ? [run.output] : run.output.results;
  for (const res of list) results.push({ round: run.round, ...res });
}
const metrics = ['enqueue_per_s', 'drain_per_s', 'end_to_end_per_s', 'latency_p50_ms', 'latency_p99_ms'];
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const systems = [...new Set(results.map((r) => r.system))];
const medians = {};
for (const s of systems) {
  const rs = results.filter((r) => r.system === s);
  medians[s] = { runs: rs.length, runs_with_failures: rs.filter((r) => r.failures.length).length };
  for (const m of metrics) medians[s][m] = median(rs.map((r) => r[m]));
}
const ours = systems.find((s) => s === 'chatter-worker');
const bull = systems.find((s) => s.startsWith('bullmq'));
const apalis = systems.find((s) => s.startsWith('apalis'));
const ratio = (a, b, m) => (a && b && medians[a][m] && medians[b][m] ? medians[a][m] / medians[b][m] : null);
const ratios = {
  end_to_end_ours_over_bullmq: ratio(ours, bull, 'end_to_end_per_s'),
  drain_ours_over_bullmq: ratio(ours, bull, 'drain_per_s'),
  end_to_end_ours_over_apalis: ratio(ours, apalis, 'end_to_end_per_s'),
};
const env = process.env;
const report = {
  params: { jobs: +env.JOBS, concurrency: +env.CONCURRENCY, latency_samples: +env.SAMPLES, rounds: +env.ROUNDS },
  machine: { nproc: os.cpus().length, cpu_model: env.CPU_MODEL, redis: env.REDIS_VERSION, node: process.version },
  runs,
  medians,
  ratios,
};
fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');

const fmt = (v, d) => (v === null ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const head = ['system', 'enqueue/s', 'drain jobs/s', 'e2e jobs/s', 'p50 ms', 'p99 ms', 'runs w/ failures'];
const rows = systems.map((s) => {
  const m = medians[s];
  return [s, fmt(m.enqueue_per_s, 0), fmt(m.drain_per_s, 0), fmt(m.end_to_end_per_s, 0),
    fmt(m.latency_p50_ms, 3), fmt(m.latency_p99_ms, 3), `${m.runs_with_failures}/${m.runs}`];
});
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
const p = report.params;
console.log(`\nmedians of ${p.rounds} rounds: jobs=${p.jobs} concurrency=${p.concurrency} latency samples=${p.latency_samples}`);
console.log(`machine: ${report.machine.nproc} cpus, ${report.machine.cpu_model}; ${report.machine.redis.split(' sha=')[0]}; node ${report.machine.node}\n`);
console.log(line(head));
console.log(w.map((n) => '-'.repeat(n)).join('  '));
for (const r of rows) console.log(line(r));
const fr = (v) => (v === null ? '-' : v.toFixed(2) + 'x');
console.log(`\nchatter-worker / ${bull ?? 'bullmq'}: end-to-end ${fr(ratios.end_to_end_ours_over_bullmq)}, drain ${fr(ratios.drain_ours_over_bullmq)}`);
console.log(`chatter-worker / ${apalis ?? 'apalis-redis'}: end-to-end ${fr(ratios.end_to_end_ours_over_apalis)}`);
const failures = results.filter((r) => r.failures.length);
if (failures.length) {
  console.log('\nfailures:');
  for (const r of failures) console.log(`  round ${r.round} ${r.system}: ${r.failures.join('; ')}`);
}
console.log(`\nall results: ${outFile}`);
EOF
