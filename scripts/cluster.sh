#!/usr/bin/env bash
# A local production topology of Spillway: PostgreSQL, N `spillway serve --no-worker` behind
# HAProxy, M `spillway worker`. The same shape as docs/deploy.md describes for real machines,
# started in one folder so it can be brought up, inspected, broken and torn down by tests and
# benchmarks.
#
#   scripts/cluster.sh up [--serves N] [--workers M] [--port P] [--dir DIR] [--database-url URL]
#   scripts/cluster.sh down [--dir DIR]
#   scripts/cluster.sh status [--dir DIR]          # one line per process; exit 3 if one is down
#   scripts/cluster.sh start NAME [--dir DIR]      # (re)start serve-K, worker-K, haproxy, postgres
#
# Layout of DIR (default .cluster): env (SPILLWAY_DATABASE_URL, SPILLWAY_SECRET_KEY; 0600, kept
# across `up`s), passthrough.env (the caller's other SPILLWAY_* at `up`, for `start`),
# cluster.conf (counts and ports), haproxy.cfg, logs/NAME.log, pids/NAME.pid, data/NAME/ (each
# process's SPILLWAY_DATA_DIR), pg/ (the PostgreSQL cluster when this script runs it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STOP_TIMEOUT=${CLUSTER_STOP_TIMEOUT:-20}     # seconds between TERM and KILL
START_TIMEOUT=${CLUSTER_START_TIMEOUT:-60}   # seconds for everything to answer /healthz

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '7,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- arguments -----------------------------------------------------------------------------

COMMAND=${1:-}
[ -n "$COMMAND" ] || usage
shift
NAME=
if [ "$COMMAND" = start ]; then
  NAME=${1:-}
  [ -n "$NAME" ] || die "start needs a process name (serve-K, worker-K, haproxy, postgres)"
  shift
fi
SERVES=2
WORKERS=2
PORT=8800
DIR=.cluster
DATABASE_URL=
while [ $# -gt 0 ]; do
  case "$1" in
    --serves) SERVES=${2:?--serves needs a number}; shift 2 ;;
    --workers) WORKERS=${2:?--workers needs a number}; shift 2 ;;
    --port) PORT=${2:?--port needs a number}; shift 2 ;;
    --dir) DIR=${2:?--dir needs a folder}; shift 2 ;;
    --database-url) DATABASE_URL=${2:?--database-url needs a URL}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done
for number in "$SERVES" "$WORKERS" "$PORT"; do
  [[ $number =~ ^[0-9]+$ ]] || die "not a number: $number"
done
[ "$SERVES" -ge 1 ] || die "--serves must be at least 1"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)  # absolute: processes and pid files must not depend on the cwd
SPILLWAY_BIN_SET=${SPILLWAY_BIN:+1}  # given by the caller: never install a venv over it
SPILLWAY_BIN=${SPILLWAY_BIN:-$ROOT/.venv/bin/spillway}

# PostgreSQL refuses to run as root: as root, its cluster belongs to the `postgres` user.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
  AS_PG=(runuser -u postgres --)
fi

# --- small helpers -------------------------------------------------------------------------

pidfile() { echo "$DIR/pids/$1.pid"; }
logfile() { echo "$DIR/logs/$1.log"; }

# What a process of this name runs: the pid file is trusted only when the pid still runs it,
# so a pid reused by an unrelated process after a crash is never signalled.
expected_program() {
  case "$1" in
    haproxy) echo haproxy ;;
    postgres) echo postgres ;;
    *) echo spillway ;;
  esac
}

# The pid of NAME when it runs, else nothing (and status 1).
running_pid() {
  local name=$1 file pid
  if [ "$name" = postgres ]; then
    file=$(pg_data)/postmaster.pid
  else
    file=$(pidfile "$name")
  fi
  [ -r "$file" ] || return 1
  pid=$(head -n 1 "$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$(expected_program "$name")" || return 1
  echo "$pid"
}

# HTTP status of GET PATH on 127.0.0.1:PORT, or 000; bash's /dev/tcp, so no curl is needed.
http_status() {
  local port=$1 path=$2
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    read -r _ code _ <&3
    echo "$code"' _ "$port" "$path" 2>/dev/null || echo 000
}

port_in_use() {
  # shellcheck disable=SC2016 # $1 is the inner shell's argument
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

free_port() {
  local port
  for port in $(seq 15432 15532); do
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  die "no free port for PostgreSQL in 15432-15532"
}

log_tail() {
  local file
  file=$(logfile "$1")
  echo "--- last lines of $file ---" >&2
  tail -n 40 "$file" >&2 2>/dev/null || echo "(no log)" >&2
}

# Read KEY=value lines (the env file format systemd's EnvironmentFile also reads) into the
# environment; with `keep`, a variable the caller already set wins.
load_env() {
  local file=$1 mode=${2:-} line key
  [ -r "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    [[ $line =~ ^[A-Z_][A-Z0-9_]*= ]] || continue
    key=${line%%=*}
    if [ "$mode" = keep ] && [ -n "${!key+set}" ]; then
      continue
    fi
    export "${line?}"
  done <"$file"
}

save_conf() {
  cat >"$DIR/cluster.conf" <<EOF
SERVES=$SERVES
WORKERS=$WORKERS
PORT=$PORT
OWN_POSTGRES=$OWN_POSTGRES
EOF
}

load_conf() {
  [ -r "$DIR/cluster.conf" ] || die "no cluster in $DIR (run: scripts/cluster.sh up --dir $DIR)"
  local line
  while IFS= read -r line; do
    case "$line" in
      SERVES=* | WORKERS=* | PORT=* | OWN_POSTGRES=*) eval "${line%%=*}=\${line#*=}" ;;
    esac
  done <"$DIR/cluster.conf"
}

names() {
  local i
  for ((i = 1; i <= SERVES; i++)); do echo "serve-$i"; done
  for ((i = 1; i <= WORKERS; i++)); do echo "worker-$i"; done
  echo haproxy
  [ "${OWN_POSTGRES:-0}" = 1 ] && echo postgres
  return 0
}

# --- installing what is missing -------------------------------------------------------------

pg_bindir() {
  local found
  found=$(find /usr/lib/postgresql -maxdepth 3 -name initdb -path '*/bin/*' 2>/dev/null \
    | sort -V | tail -n 1)
  if [ -n "$found" ]; then
    dirname "$found"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

install_missing() {
  local need=()
  command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
  if [ -z "$DATABASE_URL" ] && [ -z "$(pg_bindir)" ]; then need+=(postgresql); fi
  command -v runuser >/dev/null 2>&1 || need+=(util-linux)
  if [ -z "${SPILLWAY_BIN_SET:-}" ] && [ ! -x "$ROOT/.venv/bin/python" ]; then
    python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing system packages: ${need[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian's postgresql package starts its own cluster on 5432; ours runs beside it on its own
  # port, so that one is left alone.
  if [ ! -x "$SPILLWAY_BIN" ]; then
    [ -z "${SPILLWAY_BIN_SET:-}" ] || die "SPILLWAY_BIN=$SPILLWAY_BIN is not executable"
    echo "installing Spillway into $ROOT/.venv"
    make -C "$ROOT" --no-print-directory .venv/.runtime-stamp
  fi
}

# --- PostgreSQL ----------------------------------------------------------------------------

# Where the cluster's files live. As root, the `postgres` user must reach them; a DIR below a
# private folder (pytest's tmp dirs are 0700) cannot be, so the cluster then goes to a folder of
# its own under /tmp and DIR/pg is a symlink to it.
pg_root() {
  if [ -L "$DIR/pg" ] || [ -d "$DIR/pg" ]; then
    readlink -f "$DIR/pg"
    return
  fi
  if [ ${#AS_PG[@]} -gt 0 ] && ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then
    local outside
    outside=$(mktemp -d "${TMPDIR:-/tmp}/spillway-cluster-pg.XXXXXX")
    ln -s "$outside" "$DIR/pg"
    echo "$outside"
    return
  fi
  mkdir -p "$DIR/pg"
  echo "$DIR/pg"
}

pg_data() { echo "$(readlink -f "$DIR/pg" 2>/dev/null || echo "$DIR/pg")/data"; }

pg_port() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$(pg_data)/spillway.conf" 2>/dev/null; }

pg_ctl_as() {
  local bindir
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || die "PostgreSQL is not installed (apt-get install postgresql)"
  "${AS_PG[@]}" "$bindir/pg_ctl" "$@"
}

pg_init() {
  local root data bindir port connections
  root=$(pg_root)
  data=$root/data
  [ -f "$data/PG_VERSION" ] && return 0
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || die "PostgreSQL is not installed (apt-get install postgresql)"
  mkdir -p "$root/sock"
  [ ${#AS_PG[@]} -eq 0 ] || chown postgres:postgres "$root" "$root/sock"
  # Trust on loopback only: fine for a topology on one's own machine, never for a real one
  # (docs/deploy.md: scram-sha-256 passwords).
  "${AS_PG[@]}" "$bindir/initdb" -D "$data" -U spillway -E UTF8 -A trust >"$root/initdb.log" 2>&1 \
    || { cat "$root/initdb.log" >&2; die "initdb failed"; }
  port=$(free_port)
  # Every process opens up to 2 x SPILLWAY_DB_POOL_SIZE connections (its pool and as many
  # again under load; docs/deploy.md); the rest is headroom for CLI commands, psql, migrations.
  connections=$(((SERVES + WORKERS) * 2 * ${SPILLWAY_DB_POOL_SIZE:-5} + 30))
  [ "$connections" -ge 100 ] || connections=100
  # Written to a file of our own, included from postgresql.conf, so the settings are visible
  # in one place and survive restarts (the port stays the one in SPILLWAY_DATABASE_URL).
  "${AS_PG[@]}" tee "$data/spillway.conf" >/dev/null <<EOF
# Written by scripts/cluster.sh for a small machine; see docs/deploy.md for real ones.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root/sock'
max_connections = $connections
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 8MB
maintenance_work_mem = 128MB
# Ingest is write-heavy: fewer, larger checkpoints. Durability is untouched: fsync and
# synchronous_commit stay on, since a 200 from POST /events promises the commit is on disk.
max_wal_size = 2GB
checkpoint_timeout = 15min
wal_compression = on
synchronous_commit = on
log_min_duration_statement = 2000
log_line_prefix = '%m [%p] %a '
EOF
  echo "include 'spillway.conf'" | "${AS_PG[@]}" tee -a "$data/postgresql.conf" >/dev/null
}

pg_start() {
  local root
  root=$(pg_root)
  if running_pid postgres >/dev/null; then
    return 0
  fi
  # pg_ctl runs as postgres, which cannot write into DIR/logs: the log lives beside the data
  # and DIR/logs/postgres.log points to it.
  pg_ctl_as -D "$root/data" -l "$root/postgres.log" -w -t "$START_TIMEOUT" start >/dev/null \
    || { tail -n 40 "$root/postgres.log" >&2; die "PostgreSQL did not start"; }
  ln -sfn "$root/postgres.log" "$(logfile postgres)"
  head -n 1 "$root/data/postmaster.pid" >"$(pidfile postgres)"
}

pg_create_database() {
  local bindir port
  bindir=$(pg_bindir)
  port=$(pg_port)
  if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U spillway -d postgres -tAc \
    "select 1 from pg_database where datname = 'spillway'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U spillway spillway
  fi
}

# --- Spillway's processes ------------------------------------------------------------------

secret() {
  # 64 url-safe characters from the kernel's CSPRNG (Spillway needs at least 32).
  head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

write_env() {
  local url=$1 key=
  if [ -r "$DIR/env" ]; then
    key=$(sed -n 's/^SPILLWAY_SECRET_KEY=//p' "$DIR/env")
  fi
  # Reused on every `up`: stored destination credentials are sealed with this key.
  [ -n "$key" ] || key=$(secret)
  (
    umask 077
    printf 'SPILLWAY_DATABASE_URL=%s\nSPILLWAY_SECRET_KEY=%s\n' "$url" "$key" >"$DIR/env.tmp"
  )
  mv "$DIR/env.tmp" "$DIR/env"
  chmod 600 "$DIR/env"
}

# The caller's own SPILLWAY_* settings (SPILLWAY_LOCAL_ROOT, SPILLWAY_ALLOWED_ENDPOINTS…) go to
# every process; saved so `start` gives a restarted process the same ones.
save_passthrough() {
  local name
  (
    umask 077
    : >"$DIR/passthrough.env"
    for name in $(compgen -e); do
      case "$name" in
        SPILLWAY_DATABASE_URL | SPILLWAY_SECRET_KEY | SPILLWAY_DATA_DIR | SPILLWAY_BIN) ;;
        SPILLWAY_*) printf '%s=%s\n' "$name" "${!name}" >>"$DIR/passthrough.env" ;;
      esac
    done
  )
}

# The environment every Spillway process of the cluster gets. The cluster's database and key
# win over the caller's: they define which cluster this is.
spillway_env() {
  load_env "$DIR/passthrough.env" keep
  load_env "$DIR/env"
}

launch() {
  local name=$1
  shift
  mkdir -p "$DIR/data/$name"
  printf -- '--- %s: starting %s ---\n' "$(date -Is)" "$name" >>"$(logfile "$name")"
  # setsid: the process leaves the caller's session and process group, so a Ctrl-C in the
  # shell that ran `up`, or a test runner ending, does not take the cluster down with it.
  # PGAPPNAME names the process's connections in pg_stat_activity.
  (
    exec setsid env SPILLWAY_DATA_DIR="$DIR/data/$name" PGAPPNAME="spillway-$name" "$@"
  ) </dev/null >>"$(logfile "$name")" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

start_one() {
  local name=$1 index
  case "$name" in
    serve-*)
      index=${name#serve-}
      launch "$name" "$SPILLWAY_BIN" serve --no-worker --host 127.0.0.1 --port $((PORT + index))
      ;;
    worker-*) launch "$name" "$SPILLWAY_BIN" worker ;;
    haproxy)
      haproxy -c -q -f "$DIR/haproxy.cfg" || die "HAProxy refuses $DIR/haproxy.cfg"
      # -db: in the foreground, logging to stdout (our log file), like every other process.
      launch haproxy haproxy -db -f "$DIR/haproxy.cfg"
      ;;
    postgres) pg_start ;;
    *) die "unknown process name: $name" ;;
  esac
}

# Wait until NAME is ready: a serve or the LB answers /healthz 200, a worker is still alive
# after a moment (it has no port). Fails loudly with the log's tail.
wait_ready() {
  local name=$1 deadline port=
  deadline=$((SECONDS + START_TIMEOUT))
  case "$name" in
    serve-*) port=$((PORT + ${name#serve-})) ;;
    haproxy) port=$PORT ;;
    postgres) return 0 ;;
  esac
  while :; do
    if ! running_pid "$name" >/dev/null; then
      log_tail "$name"
      die "$name exited during start"
    fi
    if [ -z "$port" ]; then
      # A worker that cannot reach the database or read its settings exits within a second.
      [ $((SECONDS + START_TIMEOUT - deadline)) -ge 2 ] && return 0
    elif [ "$(http_status "$port" /healthz)" = 200 ]; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail "$name"
      die "$name did not become ready within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

write_haproxy_cfg() {
  local i
  {
    cat <<EOF
# Written by scripts/cluster.sh; docs/deploy.md explains each choice.
global
    maxconn 4096
    log stdout format raw local0 info
    # For draining a serve by hand: echo "set server serves/serve-1 state drain" | socat - …
    stats socket $DIR/haproxy.sock mode 600 level admin

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 2s
    # Inactivity limits, not totals: a 10 MB body from a slow client keeps the connection alive
    # as long as bytes flow; the server side covers a large batch's commit under load.
    timeout client 60s
    timeout server 60s
    timeout http-request 30s
    timeout http-keep-alive 10s
    timeout queue 10s
    # Retry only what is safe to retry, on another serve (redispatch): a connection that could
    # not be opened (nothing was sent), for any request; a GET or HEAD whose serve died before
    # answering (it changes nothing). Any other request already sent is never replayed by the LB:
    # POST /api/v1/events is idempotent only when the client sends event_uuid, so the client
    # decides to retry, not HAProxy.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend spillway
    bind 127.0.0.1:$PORT
    # Connection failures are still retried for every method; this stops replays only.
    http-request disable-l7-retry unless METH_GET
    default_backend serves

backend serves
    balance leastconn
    # A serve whose /healthz fails twice (2 s) gets no new requests; one success brings it back.
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 1
EOF
    for ((i = 1; i <= SERVES; i++)); do
      printf '    server serve-%d 127.0.0.1:%d\n' "$i" $((PORT + i))
    done
  } >"$DIR/haproxy.cfg"
}

# --- commands ------------------------------------------------------------------------------

on_up_failure() {
  local code=$?
  [ "$code" -ne 0 ] || return 0
  echo "cluster.sh: up failed; stopping what it started (logs in $DIR/logs)" >&2
  (cmd_down >/dev/null 2>&1) || true
}

cmd_up() {
  local name url i
  if [ -r "$DIR/cluster.conf" ]; then
    local saved_serves=$SERVES saved_workers=$WORKERS saved_port=$PORT
    load_conf
    for name in $(names); do
      if running_pid "$name" >/dev/null; then
        die "$name of $DIR is running already: scripts/cluster.sh down --dir $DIR first"
      fi
    done
    SERVES=$saved_serves WORKERS=$saved_workers PORT=$saved_port
  fi
  for ((i = 0; i <= SERVES; i++)); do
    if port_in_use $((PORT + i)); then die "port $((PORT + i)) is in use"; fi
  done
  install_missing
  mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/data"
  # A half-started cluster is torn down, so a failed `up` leaves no process behind (the logs
  # and data stay for a look).
  trap on_up_failure EXIT

  if [ -n "$DATABASE_URL" ]; then
    OWN_POSTGRES=0
    url=$DATABASE_URL
  else
    OWN_POSTGRES=1
    save_conf  # first, so a failed start below can still be torn down
    pg_init
    pg_start
    pg_create_database
    url="postgresql+psycopg://spillway@127.0.0.1:$(pg_port)/spillway"
  fi
  save_conf
  write_env "$url"
  save_passthrough
  spillway_env

  # One migration before any process starts, rather than N+M processes racing to do it.
  "$SPILLWAY_BIN" admin migrate >"$(logfile migrate)" 2>&1 \
    || { log_tail migrate; die "spillway admin migrate failed"; }

  for ((i = 1; i <= SERVES; i++)); do start_one "serve-$i"; done
  for ((i = 1; i <= WORKERS; i++)); do start_one "worker-$i"; done
  for ((i = 1; i <= SERVES; i++)); do wait_ready "serve-$i"; done
  for ((i = 1; i <= WORKERS; i++)); do wait_ready "worker-$i"; done
  write_haproxy_cfg
  start_one haproxy
  wait_ready haproxy
  trap - EXIT

  cat <<EOF
Spillway cluster is up: http://127.0.0.1:$PORT (HAProxy over $SERVES serves; $WORKERS workers)
  database:  $url$([ "$OWN_POSTGRES" = 1 ] && echo " (PostgreSQL in $DIR/pg)")
  settings:  $DIR/env (0600)   logs: $DIR/logs/   status: scripts/cluster.sh status --dir $DIR

Next steps:
  set -a; . $DIR/env; set +a                  # the cluster's database and key, for the CLI
  $SPILLWAY_BIN admin create-project my-app
  $SPILLWAY_BIN admin create-key my-app --scope write     # prints the token once
  curl -s http://127.0.0.1:$PORT/api/v1/events -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{"events": [{"event_name": "App Opened", "uid": "u1"}]}'
  scripts/cluster.sh down --dir $DIR
EOF
}

# TERM every pid given, wait for all of them together, KILL what is left after STOP_TIMEOUT.
stop_pids() {
  local deadline pid left
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while :; do
    left=()
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null; then left+=("$pid"); fi
    done
    [ ${#left[@]} -gt 0 ] || return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster.sh: killing ${left[*]} after ${STOP_TIMEOUT}s" >&2
      kill -KILL "${left[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
}

stop_names() {
  local name pid pids=()
  for name in "$@"; do
    if pid=$(running_pid "$name"); then pids+=("$pid"); fi
    rm -f "$(pidfile "$name")"
  done
  stop_pids "${pids[@]}"
}

cmd_down() {
  [ -r "$DIR/cluster.conf" ] || { echo "nothing to stop in $DIR"; return 0; }
  load_conf
  local name serves=() workers=() others
  # Whatever ran, even serve-K beyond today's counts (pid files left by an earlier `up`).
  for name in "$DIR"/pids/*.pid; do
    [ -e "$name" ] || continue
    name=$(basename "$name" .pid)
    case "$name" in
      serve-*) serves+=("$name") ;;
      worker-*) workers+=("$name") ;;
    esac
  done
  # The LB first so no new request reaches a serve on its way down; then serves and workers
  # together (each finishes or abandons its work safely: nothing acknowledged is lost, a
  # worker's run is redone by the next one); the database last.
  stop_names haproxy
  stop_names "${serves[@]}" "${workers[@]}"
  if [ "${OWN_POSTGRES:-0}" = 1 ] && running_pid postgres >/dev/null; then
    pg_ctl_as -D "$(pg_data)" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null \
      || pg_ctl_as -D "$(pg_data)" -m immediate stop >/dev/null || true
  fi
  rm -f "$(pidfile postgres)"
  others=$(for name in $(names); do if running_pid "$name" >/dev/null; then echo "$name"; fi; done)
  [ -z "$others" ] || die "still running: $others"
  echo "cluster in $DIR stopped (data kept; rm -rf $DIR to start afresh)"
}

cmd_status() {
  load_conf
  local name pid detail down=0
  for name in $(names); do
    detail=
    case "$name" in
      serve-*) detail=" 127.0.0.1:$((PORT + ${name#serve-}))" ;;
      haproxy) detail=" http://127.0.0.1:$PORT" ;;
      postgres) detail=" 127.0.0.1:$(pg_port)" ;;
    esac
    if pid=$(running_pid "$name"); then
      printf '%-10s up    pid %-8s%s\n' "$name" "$pid" "$detail"
    else
      printf '%-10s down%s\n' "$name" "$detail"
      down=1
    fi
  done
  # 3, like LSB's "program is not running": scripts can test for a whole cluster.
  [ "$down" = 0 ] || exit 3
}

cmd_start() {
  load_conf
  case "$NAME" in
    serve-* | worker-*)
      local index=${NAME#*-}
      if ! [[ $index =~ ^[1-9][0-9]*$ ]]; then die "unknown process name: $NAME"; fi
      ;;
    haproxy) ;;
    postgres) [ "$OWN_POSTGRES" = 1 ] || die "this cluster uses an external database" ;;
    *) die "unknown process name: $NAME" ;;
  esac
  spillway_env
  if [ "$NAME" = postgres ]; then
    pg_start
  else
    stop_names "$NAME"  # a restart: the running one (if any) goes first
    start_one "$NAME"
    wait_ready "$NAME"
  fi
  echo "$NAME started"
}

case "$COMMAND" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start) cmd_start ;;
  *) usage ;;
esac
