#!/usr/bin/env bash
# Run every test of the chatter-worker workspace.
#
#   scripts/test.sh                      # fmt + clippy + all tests
#   scripts/test.sh --test conformance   # extra args go to `cargo test --release ...`
#
# What it does:
#   1. installs missing system packages with apt (redis, PostgreSQL 15, promtool, chromium) and,
#      if needed, builds pgvector for PostgreSQL 15 from the Debian (trixie) source package; in the
#      background meanwhile, `npm ci` in tests/browser (playwright-core) and a venv with
#      schemathesis (scripts/schemathesis-requirements.txt), each only when missing or stale;
#   2. starts a private Redis and PostgreSQL 15 on free loopback ports, with state under
#      $ROOT/.test-services/<pid> (gitignored), and creates database `chatter_test` with the
#      `vector` extension;
#   3. runs `cargo fmt --check`, `cargo clippy -D warnings` and
#      `cargo test --workspace --release -- --test-threads=4`;
#   4. always stops both services and removes the state dir on exit (the exit code is kept).
#
# Environment:
#   SKIP_LINT=1                  skip cargo fmt / clippy
#   CW_USE_EXISTING_SERVICES=1   with REDIS_URL and DATABASE_URL already set: start nothing
#   CW_TEST_CMD="..."            run this (via bash -c, script args as "$@") instead of cargo test
#   CW_TEST_THREADS=N            test threads (default 4)
#   CW_INSTALL_ONLY=1            install the packages (and pgvector), start nothing (run.sh uses it)
#   CW_SKIP_TEST_TOOLS=1         do not install chromium, tests/browser's node_modules, schemathesis
#   CW_TEST_MODEL_DIR=DIR        the local embedding model, F32 (default: scripts/fetch-model.sh fetches it)
#   CW_TEST_INT8_MODEL_DIR=DIR   its int8 ONNX export (default: scripts/fetch-model.sh int8)
#
# Exported to the tests: REDIS_URL, DATABASE_URL, REDIS_SERVER_BIN, PROMTOOL, CW_TEST_SERVICES=1,
# CHROMIUM (/usr/bin/chromium), CW_BROWSER_DIR (tests/browser, with node_modules installed) and
# SCHEMATHESIS (the venv's schemathesis executable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGVECTOR_CONTROL="/usr/share/postgresql/${PG_VERSION}/extension/vector.control"
APT_TMP_SOURCES="/etc/apt/sources.list.d/chatter-worker-test-pgvector-src.sources"

log() { printf '\n==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

IS_ROOT=0
[[ $EUID -eq 0 ]] && IS_ROOT=1

# Run a command as root (directly, or via sudo when not root).
as_root() {
    if [[ $IS_ROOT -eq 1 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Run a command as the PostgreSQL server user (postgres refuses to run as root).
as_pg() {
    if [[ $IS_ROOT -eq 1 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# Cleanup: one EXIT trap for everything this script may leave behind.
# ---------------------------------------------------------------------------------------------
STATE_DIR=""
PG_BASE=""          # dir holding the PG data dir + socket (STATE_DIR, or a /tmp fallback)
PG_STARTED=0
REDIS_PORT=""
REDIS_STARTED=0
APT_TMP_SOURCES_ADDED=0
PGVECTOR_BUILD_DIR=""
BG_JOBS=()          # background installs still to wait for: "pid|name|log"

# Is <pid> a live process? (a zombie is not: in containers whose pid 1 does not reap orphans,
# a daemonized redis-server that exited stays a zombie and still passes `kill -0`)
proc_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

stop_redis() { # <pidfile> <port>
    local pidfile=$1 port=$2 pid="" i
    [[ -s $pidfile ]] && pid=$(<"$pidfile")
    if [[ -n $port ]]; then
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [[ -n $pid ]]; then
        for i in $(seq 1 50); do
            proc_alive "$pid" || return 0
            [[ $i -eq 1 ]] && kill "$pid" 2>/dev/null
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    return 0
}

stop_pg() { # <datadir>
    local data=$1
    [[ -f $data/postmaster.pid ]] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 \
        || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ $REDIS_STARTED -eq 1 || $PG_STARTED -eq 1 ]]; then
        log "stopping test services"
    fi
    if [[ $REDIS_STARTED -eq 1 ]]; then
        stop_redis "$STATE_DIR/redis.pid" "$REDIS_PORT"
    fi
    if [[ $PG_STARTED -eq 1 ]]; then
        stop_pg "$PG_BASE/pg"
    fi
    if [[ -n $PG_BASE && $PG_BASE != "$STATE_DIR" ]]; then
        rm -rf "$PG_BASE"
    fi
    if [[ -n $STATE_DIR ]]; then
        rm -rf "$STATE_DIR"
        rmdir "$ROOT/.test-services" 2>/dev/null
    fi
    if [[ $APT_TMP_SOURCES_ADDED -eq 1 && -e $APT_TMP_SOURCES ]]; then
        as_root rm -f "$APT_TMP_SOURCES"
        as_root apt-get update -qq >/dev/null 2>&1
    fi
    [[ -n $PGVECTOR_BUILD_DIR ]] && as_root rm -rf "$PGVECTOR_BUILD_DIR"
    local job pid name joblog
    for job in "${BG_JOBS[@]}"; do # background installs cut short (their stamps are not written)
        IFS='|' read -r pid name joblog <<<"$job"
        pkill -TERM -P "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
        rm -f "$joblog"
    done
    if [[ $rc -eq 0 ]]; then
        log "all done: OK"
    else
        log "FAILED (exit code $rc)"
    fi
    # The totals close the output (CI reads the last lines).
    [[ -n ${TEST_SUMMARY:-} ]] && printf '%s\n' "$TEST_SUMMARY"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. System packages
# ---------------------------------------------------------------------------------------------
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

APT_UPDATED=0
apt_install() { # <pkg>...  (installs those not installed yet; apt-get update at most once)
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

USE_EXISTING=0
if [[ ${CW_USE_EXISTING_SERVICES:-0} == 1 && -n ${REDIS_URL:-} && -n ${DATABASE_URL:-} ]]; then
    USE_EXISTING=1
fi

log "checking system packages"
pkgs=()
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    pkgs+=(redis-server redis-tools)
fi
command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ${CW_SKIP_TEST_TOOLS:-0} != 1 ]]; then
    if [[ ! -x $CHROMIUM ]]; then
        pkgs+=(chromium)
        CHROMIUM=/usr/bin/chromium
    fi
    # the schemathesis venv (Debian's own python3 needs python3-venv for ensurepip)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
fi
if [[ $USE_EXISTING -eq 0 ]]; then
    [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb ]] || pkgs+=("postgresql-$PG_VERSION")
    command -v psql >/dev/null 2>&1 || pkgs+=("postgresql-client-$PG_VERSION")
    [[ -f $PGVECTOR_CONTROL ]] || pkgs+=("postgresql-server-dev-$PG_VERSION")
fi
apt_install "${pkgs[@]}"

# ---------------------------------------------------------------------------------------------
# 1b. Test tools from npm and PyPI, in the background (waited for before the tests run):
#     playwright-core for tests/browser (drives Debian's chromium: no browser download), and
#     schemathesis in a venv in the user's cache. Each is skipped while its stamp matches.
# ---------------------------------------------------------------------------------------------
CW_BROWSER_DIR="$ROOT/tests/browser"
SCHEMATHESIS_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/chatter-worker/schemathesis-venv"
SCHEMATHESIS_REQS="$ROOT/scripts/schemathesis-requirements.txt"
SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/schemathesis"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# node_modules is current when its stamp holds package-lock.json's hash (npm ci empties it first).
browser_deps_current() {
    [[ -f $CW_BROWSER_DIR/node_modules/.cw-lock-sha256 \
        && $(<"$CW_BROWSER_DIR/node_modules/.cw-lock-sha256") == "$(sha256_of "$CW_BROWSER_DIR/package-lock.json")" ]]
}
install_browser_deps() {
    (cd "$CW_BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    sha256_of "$CW_BROWSER_DIR/package-lock.json" >"$CW_BROWSER_DIR/node_modules/.cw-lock-sha256"
}

# The venv is current when its stamp holds the requirements file's hash.
schemathesis_current() {
    [[ -x $SCHEMATHESIS && -f $SCHEMATHESIS_VENV/.cw-requirements-sha256 \
        && $(<"$SCHEMATHESIS_VENV/.cw-requirements-sha256") == "$(sha256_of "$SCHEMATHESIS_REQS")" ]]
}
install_schemathesis() {
    mkdir -p "$(dirname "$SCHEMATHESIS_VENV")"
    # one installer at a time per cache (two test runs may share it)
    exec 9>"$SCHEMATHESIS_VENV.lock"
    command -v flock >/dev/null 2>&1 && flock 9
    schemathesis_current && return 0
    rm -rf "$SCHEMATHESIS_VENV"
    python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$SCHEMATHESIS_REQS"
    "$SCHEMATHESIS" --version
    sha256_of "$SCHEMATHESIS_REQS" >"$SCHEMATHESIS_VENV/.cw-requirements-sha256"
}

bg_install() { # <name> <function>: run it in the background, output to a log
    local joblog
    joblog=$(mktemp "${TMPDIR:-/tmp}/cw-install.XXXXXX")
    (
        started=$SECONDS
        "$2"
        echo "$1: installed in $((SECONDS - started))s"
    ) </dev/null >"$joblog" 2>&1 &
    BG_JOBS+=("$!|$1|$joblog")
    note "$1: installing in the background"
}

wait_bg_installs() {
    local job pid name joblog rc failed=0
    for job in "${BG_JOBS[@]}"; do
        IFS='|' read -r pid name joblog <<<"$job"
        rc=0
        wait "$pid" || rc=$?
        if [[ $rc -eq 0 ]]; then
            note "$(tail -n 1 "$joblog")"
        else
            tail -n 40 "$joblog" >&2
            note "$name: install FAILED (exit code $rc)"
            failed=1
        fi
        rm -f "$joblog"
    done
    BG_JOBS=()
    [[ $failed -eq 0 ]] || die "could not install the test tools"
}

if [[ ${CW_SKIP_TEST_TOOLS:-0} != 1 ]]; then
    if ! browser_deps_current; then
        command -v npm >/dev/null 2>&1 || die "npm not found (Node.js >= 20 is needed for tests/browser)"
        bg_install "tests/browser node_modules (npm ci)" install_browser_deps
    fi
    schemathesis_current || bg_install "schemathesis venv ($SCHEMATHESIS_VENV)" install_schemathesis
fi

# ---------------------------------------------------------------------------------------------
# 2. pgvector for PostgreSQL 15 (bookworm has no binary package: build trixie's source package)
# ---------------------------------------------------------------------------------------------
# Print a deb822 stanza for the Debian *source* archive, with URIs and Signed-By copied from
# the main (non-security) entry of /etc/apt/sources.list.d/debian.sources.
debian_src_stanza() {
    local src=/etc/apt/sources.list.d/debian.sources uris="" signed=""
    if [[ -r $src ]]; then
        uris=$(awk 'BEGIN { RS = "" } {
                n = split($0, L, "\n"); u = ""
                for (i = 1; i <= n; i++) if (L[i] ~ /^URIs:/) { u = L[i]; sub(/^URIs:[ \t]*/, "", u) }
                if (u != "" && u !~ /security/) { print u; exit }
            }' "$src")
        # Signed-By may be a path or an inline (multi-line) key: copy the field verbatim.
        signed=$(awk 'BEGIN { RS = "" } {
                n = split($0, L, "\n"); u = ""; s = ""; inf = 0
                for (i = 1; i <= n; i++) {
                    if (L[i] ~ /^URIs:/) u = L[i]
                    if (L[i] ~ /^Signed-By:/) { s = L[i]; inf = 1; continue }
                    if (inf && L[i] ~ /^[ \t]/) { s = s "\n" L[i]; continue }
                    inf = 0
                }
                if (u != "" && u !~ /security/) { print s; exit }
            }' "$src")
    fi
    [[ -n $uris ]] || uris="http://deb.debian.org/debian"
    if [[ -z $signed && -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
        signed="Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\n' "$uris"
    [[ -n $signed ]] && printf '%s\n' "$signed"
    return 0
}

install_pgvector() {
    local started=$SECONDS tarball srcdir
    log "pgvector is not installed for PostgreSQL $PG_VERSION: building it from Debian source"
    apt_install make gcc libc6-dev tar gzip
    [[ -x $PG_CONFIG ]] || die "$PG_CONFIG not found (postgresql-server-dev-$PG_VERSION)"

    debian_src_stanza | as_root tee "$APT_TMP_SOURCES" >/dev/null
    APT_TMP_SOURCES_ADDED=1
    note "temporary apt source $APT_TMP_SOURCES:"
    sed 's/^/      /' "$APT_TMP_SOURCES" >&2
    as_root apt-get update -qq

    PGVECTOR_BUILD_DIR=$(mktemp -d /tmp/cw-pgvector.XXXXXX)
    chmod 0755 "$PGVECTOR_BUILD_DIR"
    # let apt download sandboxed as _apt instead of warning about it
    if [[ $IS_ROOT -eq 1 ]] && id _apt >/dev/null 2>&1; then
        chown _apt "$PGVECTOR_BUILD_DIR"
    fi
    (cd "$PGVECTOR_BUILD_DIR" && as_root apt-get source --download-only -qq "pgvector${PGVECTOR_APT_VERSION:+=$PGVECTOR_APT_VERSION}")
    as_root chown -R "$(id -u):$(id -g)" "$PGVECTOR_BUILD_DIR"

    # done with the temporary source
    as_root rm -f "$APT_TMP_SOURCES"
    as_root apt-get update -qq
    APT_TMP_SOURCES_ADDED=0

    tarball=$(find "$PGVECTOR_BUILD_DIR" -maxdepth 1 -name 'pgvector_*.orig.tar.gz' | head -n1)
    [[ -n $tarball ]] || die "apt-get source pgvector did not download an .orig.tar.gz"
    note "source: $(basename "$tarball")"
    tar -xzf "$tarball" -C "$PGVECTOR_BUILD_DIR"
    srcdir=$(find "$PGVECTOR_BUILD_DIR" -mindepth 1 -maxdepth 1 -type d -name 'pgvector*' | head -n1)
    [[ -n $srcdir ]] || die "could not find the unpacked pgvector source"

    # OPTFLAGS="": no -march=native, so the build is portable
    make -C "$srcdir" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >"$PGVECTOR_BUILD_DIR/build.log" 2>&1 \
        || { tail -n 50 "$PGVECTOR_BUILD_DIR/build.log" >&2; die "pgvector build failed"; }
    as_root make -C "$srcdir" PG_CONFIG="$PG_CONFIG" install >>"$PGVECTOR_BUILD_DIR/build.log" 2>&1 \
        || { tail -n 50 "$PGVECTOR_BUILD_DIR/build.log" >&2; die "pgvector install failed"; }
    [[ -f $PGVECTOR_CONTROL ]] || die "pgvector installed but $PGVECTOR_CONTROL is missing"

    as_root rm -rf "$PGVECTOR_BUILD_DIR"
    PGVECTOR_BUILD_DIR=""
    note "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$PGVECTOR_CONTROL") installed in $((SECONDS - started))s"
}

if [[ $USE_EXISTING -eq 0 && ! -f $PGVECTOR_CONTROL ]]; then
    install_pgvector
fi
if [[ ${CW_INSTALL_ONLY:-0} == 1 ]]; then
    wait_bg_installs
    log "CW_INSTALL_ONLY=1: Redis, PostgreSQL $PG_VERSION and pgvector are installed"
    [[ ${CW_SKIP_TEST_TOOLS:-0} == 1 ]] || note "and chromium, tests/browser/node_modules, $SCHEMATHESIS"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 3. Services
# ---------------------------------------------------------------------------------------------
port_in_use() { # <port>: is something listening on 127.0.0.1:<port>?
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

TAKEN_PORTS=" "
free_port() {
    local p i
    for i in $(seq 1 100); do
        if command -v python3 >/dev/null 2>&1; then
            p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) \
                || p=$((20000 + RANDOM % 30000))
        else
            p=$((20000 + RANDOM % 30000))
        fi
        [[ $TAKEN_PORTS == *" $p "* ]] && continue
        port_in_use "$p" && continue
        TAKEN_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "could not find a free TCP port"
}

# Services left behind by an earlier run that was killed with SIGKILL (its EXIT trap never ran).
reap_stale_state_dirs() {
    local d pid rpid
    for d in "$ROOT"/.test-services/*/; do
        [[ -d $d ]] || continue
        d=${d%/}
        pid=${d##*/}
        [[ $pid =~ ^[0-9]+$ ]] || continue
        proc_alive "$pid" && continue # that run is still alive
        note "removing stale test state dir $d"
        if [[ -s $d/redis.pid ]]; then
            rpid=$(<"$d/redis.pid")
            if [[ $(cat "/proc/$rpid/comm" 2>/dev/null) == redis-server* ]]; then
                stop_redis "$d/redis.pid" "$(cat "$d/redis.port" 2>/dev/null)"
            fi
        fi
        [[ -d $d/pg ]] && stop_pg "$d/pg"
        rm -rf "$d"
    done
}

start_services() {
    local pg_port socket_path
    mkdir -p "$ROOT/.test-services"
    reap_stale_state_dirs
    STATE_DIR="$ROOT/.test-services/$$"
    rm -rf "$STATE_DIR"
    mkdir -p "$STATE_DIR"

    # --- Redis ---
    REDIS_PORT=$(free_port)
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (state: $STATE_DIR)"
    echo "$REDIS_PORT" >"$STATE_DIR/redis.port"
    REDIS_STARTED=1
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$STATE_DIR/redis.pid" --dir "$STATE_DIR" \
        --logfile "$STATE_DIR/redis.log"
    local i
    for i in $(seq 1 100); do
        [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
        if [[ $i -eq 100 ]]; then
            tail -n 30 "$STATE_DIR/redis.log" >&2 || true
            die "redis-server did not come up"
        fi
        sleep 0.1
    done
    note "redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') up, pid $(cat "$STATE_DIR/redis.pid" 2>/dev/null)"

    # --- PostgreSQL ---
    pg_port=$(free_port)
    PG_BASE=$STATE_DIR
    if [[ $IS_ROOT -eq 1 ]]; then
        chown postgres "$STATE_DIR"
    fi
    # The server user must reach the state dir, and a unix socket path is limited to 107 bytes:
    # otherwise keep the data dir and socket in a short /tmp dir instead.
    socket_path="$STATE_DIR/pg/.s.PGSQL.$pg_port"
    if [[ ${#socket_path} -gt 100 ]] || ! as_pg test -w "$STATE_DIR"; then
        PG_BASE=$(mktemp -d /tmp/cw-pg.XXXXXX)
        [[ $IS_ROOT -eq 1 ]] && chown postgres "$PG_BASE"
        note "PostgreSQL state in $PG_BASE ($STATE_DIR is unreachable for the server or too long)"
    fi
    mkdir -p "$PG_BASE/pg"
    touch "$PG_BASE/pg.log"
    if [[ $IS_ROOT -eq 1 ]]; then
        chown postgres "$PG_BASE/pg" "$PG_BASE/pg.log"
    fi
    chmod 0700 "$PG_BASE/pg"

    log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$pg_port"
    as_pg "$PG_BIN/initdb" -D "$PG_BASE/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
        >"$STATE_DIR/initdb.log" 2>&1 \
        || { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }
    PG_STARTED=1
    as_pg "$PG_BIN/pg_ctl" -D "$PG_BASE/pg" \
        -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $PG_BASE/pg" \
        -l "$PG_BASE/pg.log" -w -t 60 start >/dev/null \
        || { tail -n 30 "$PG_BASE/pg.log" >&2; die "PostgreSQL did not start"; }
    note "$(as_pg "$PG_BIN/postgres" --version) up, pid $(head -n1 "$PG_BASE/pg/postmaster.pid")"

    local psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres)
    "${psql[@]}" -d postgres -c 'CREATE DATABASE chatter_test'
    "${psql[@]}" -d chatter_test -c 'CREATE EXTENSION IF NOT EXISTS vector'
    note "database chatter_test ready, pgvector $("${psql[@]}" -d chatter_test -tA \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"

    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/chatter_test"
}

if [[ $USE_EXISTING -eq 1 ]]; then
    log "CW_USE_EXISTING_SERVICES=1: using REDIS_URL=$REDIS_URL and the given DATABASE_URL"
else
    start_services
fi

REDIS_SERVER_BIN="$(command -v redis-server)"
PROMTOOL="$(command -v promtool)"
export REDIS_SERVER_BIN PROMTOOL CHROMIUM CW_BROWSER_DIR SCHEMATHESIS
export CW_TEST_SERVICES=1
note "REDIS_URL=$REDIS_URL"
note "DATABASE_URL=$DATABASE_URL"
note "REDIS_SERVER_BIN=$REDIS_SERVER_BIN"
note "PROMTOOL=$PROMTOOL"
note "CHROMIUM=$CHROMIUM"
note "CW_BROWSER_DIR=$CW_BROWSER_DIR"
note "SCHEMATHESIS=$SCHEMATHESIS"

# The local embedding model (F32 all-MiniLM-L6-v2): fetched once into the user's cache.
if [[ -z ${CW_TEST_MODEL_DIR:-} ]]; then
    CW_TEST_MODEL_DIR="$("$ROOT/scripts/fetch-model.sh")" || die "could not fetch the local embedding model"
fi
if [[ -z ${CW_TEST_INT8_MODEL_DIR:-} ]]; then
    CW_TEST_INT8_MODEL_DIR="$("$ROOT/scripts/fetch-model.sh" int8)" || die "could not fetch the int8 embedding model"
fi
export CW_TEST_MODEL_DIR CW_TEST_INT8_MODEL_DIR
note "CW_TEST_MODEL_DIR=$CW_TEST_MODEL_DIR"

# ---------------------------------------------------------------------------------------------
# 4. Lint and tests
# ---------------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

if [[ ${SKIP_LINT:-0} != 1 ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
    if command -v rustup >/dev/null 2>&1; then
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    fi
    log "cargo fmt --all -- --check"
    cargo fmt --all -- --check
    log "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
    log "cargo check --no-default-features --features client (producers' build)"
    cargo check --lib --no-default-features --features client
else
    log "SKIP_LINT=1: skipping cargo fmt and clippy"
fi

# the background installs overlapped the services' start and the lint
wait_bg_installs

if [[ -n ${CW_TEST_CMD:-} ]]; then
    log "tests (CW_TEST_CMD): $CW_TEST_CMD $*"
    bash -c "$CW_TEST_CMD" cw-test "$@"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
    # append --test-threads to the test binaries' args (after the caller's own `--`, if any)
    test_args=("$@")
    has_sep=0
    for a in "$@"; do [[ $a == -- ]] && has_sep=1; done
    [[ $has_sep -eq 1 ]] || test_args+=(--)
    test_args+=(--test-threads="${CW_TEST_THREADS:-4}")
    log "cargo test --workspace --release ${test_args[*]}"
    out="$(mktemp)"
    # The last lines cargo prints are the (empty) doc-test runs; close with the whole run's totals.
    status=0
    cargo test --workspace --release "${test_args[@]}" 2>&1 | tee "$out" || status=$?
    TEST_SUMMARY="$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "tests: %d passed, %d failed", p, f }' "$out")"
    rm -f "$out"
    [[ $status -eq 0 ]] || exit "$status"
fi
