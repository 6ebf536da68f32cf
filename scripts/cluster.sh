#!/usr/bin/env bash
# A real multi-service Temporal cluster on loopback, for tests and local runs:
# the Temporal server built from its Go module (a pinned version), PostgreSQL
# persistence (Debian's PostgreSQL through scripts/postgres.sh), and the four
# services (frontend, history, matching, worker) as separate processes.
#
#   scripts/cluster.sh build            # go build once; cached in .tools/temporal-server/<version>/
#   scripts/cluster.sh start            # build if needed, PostgreSQL, schemas, 4 services, namespace,
#                                       # search attributes; prints the frontend address (last stdout line)
#   scripts/cluster.sh stop             # stop the services and PostgreSQL (data kept)
#   scripts/cluster.sh status           # one line per service; exit 0 when all run
#   scripts/cluster.sh kill SERVICE     # SIGKILL one service (chaos tests)
#   scripts/cluster.sh start-service SERVICE   # start one service again and wait until it serves
#   scripts/cluster.sh destroy          # stop and delete the cluster's data and config
#
# Environment (defaults in brackets):
#   STEADFAST_CLUSTER_VERSION   go.temporal.io/server version [v1.32.1]
#   STEADFAST_CLUSTER_PORT      frontend gRPC port [7433]; the other services use the ports above it
#                               (history +1, matching +2, worker +6, frontend HTTP +10, membership +30..)
#   STEADFAST_CLUSTER_PG_PORT   PostgreSQL port [54350]
#   STEADFAST_CLUSTER_DIR       config, logs and pids [.tools/cluster]
# Everything listens on 127.0.0.1 only. Logs go to stderr; the address to stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${STEADFAST_CLUSTER_VERSION:-v1.32.1}"
PORT="${STEADFAST_CLUSTER_PORT:-7433}"
PG_PORT="${STEADFAST_CLUSTER_PG_PORT:-54350}"
RUN="${STEADFAST_CLUSTER_DIR:-$ROOT/.tools/cluster}"
BUILD="$ROOT/.tools/temporal-server/$VERSION"
SERVER_BIN="$BUILD/bin/temporal-server"
SQL_TOOL="$BUILD/bin/temporal-sql-tool"
SCHEMA="$BUILD/schema/postgresql/v12"
SERVICES=(history matching frontend worker)
ADDRESS="127.0.0.1:$PORT"
DB_USER=steadfast
export PATH="/usr/local/go/bin:$PATH"
log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The temporal CLI that scripts/setup.sh found.
temporal_cli_path() {
  local cli="${STEADFAST_TEMPORAL_CLI:-}"
  [ -n "$cli" ] || { [ -f "$ROOT/.tools/env.sh" ] && cli="$(. "$ROOT/.tools/env.sh" && echo "${STEADFAST_TEMPORAL_CLI:-}")"; }
  [ -n "$cli" ] || cli="$(command -v temporal || true)"
  [ -n "$cli" ] || die "no temporal CLI: run scripts/setup.sh first"
  echo "$cli"
}

# Runs a command with the CLI's connection variables set for this cluster only: the user's
# own TEMPORAL_* settings and profiles must not redirect the set-up to another server.
temporal_env() {
  local v unset=()
  for v in $(compgen -e | grep '^TEMPORAL_'); do unset+=(-u "$v"); done
  env "${unset[@]}" TEMPORAL_CONFIG_FILE=/dev/null TEMPORAL_ADDRESS="$ADDRESS" "$@"
}

temporal_cli() { temporal_env "$(temporal_cli_path)" "$@"; }

build() {
  if [ -x "$SERVER_BIN" ] && [ -x "$SQL_TOOL" ] && [ -d "$SCHEMA/temporal/versioned" ]; then
    log "temporal-server $VERSION already built in $BUILD"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build the Temporal server (/usr/local/go/bin/go)"
  local t0=$SECONDS src="$BUILD/src"
  mkdir -p "$src" "$BUILD/bin"
  # A throwaway module that requires the server at the pinned version: `go build` then
  # fetches exactly that module graph from the Go module proxy.
  cat >"$src/go.mod" <<EOF
module steadfast.local/temporal-server-build

go $(go env GOVERSION | sed 's/^go//')
EOF
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
EOF
  log "building go.temporal.io/server@$VERSION (cmd/server, cmd/tools/sql); the first build takes minutes"
  (
    cd "$src"
    export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
    go get "go.temporal.io/server@$VERSION" >&2
    go mod tidy >&2
    go build -o "$BUILD/bin/temporal-server.tmp" go.temporal.io/server/cmd/server
    go build -o "$BUILD/bin/temporal-sql-tool.tmp" go.temporal.io/server/cmd/tools/sql
  ) || die "go build failed"
  # The schema files ship in the module source; copy them beside the binaries.
  local mod
  mod="$(cd "$src" && go list -m -f '{{.Dir}}' go.temporal.io/server)"
  [ -d "$mod/schema/postgresql/v12" ] || die "no schema/postgresql/v12 in $mod"
  rm -rf "$BUILD/schema" && mkdir -p "$BUILD/schema/postgresql"
  cp -r "$mod/schema/postgresql/v12" "$BUILD/schema/postgresql/v12"
  chmod -R u+w "$BUILD/schema"
  mv "$BUILD/bin/temporal-server.tmp" "$SERVER_BIN"
  mv "$BUILD/bin/temporal-sql-tool.tmp" "$SQL_TOOL"
  echo "$((SECONDS - t0))" >"$BUILD/build-seconds"
  log "built in $((SECONDS - t0)) s: $SERVER_BIN"
}

pg() { STEADFAST_PG_PORT="$PG_PORT" STEADFAST_PG_DIR="${STEADFAST_CLUSTER_PG_DIR:-/tmp/steadfast-cluster-pg-$PG_PORT}" bash "$ROOT/scripts/postgres.sh" "$@"; }

# The two schemas: the same script the compose file runs in temporalio/admin-tools, here with
# the temporal-sql-tool built above and the schema files from the module source.
schemas() {
  POSTGRES_SEEDS=127.0.0.1 DB_PORT="$PG_PORT" POSTGRES_USER="$DB_USER" POSTGRES_PWD="" \
    SCHEMA_DIR="$SCHEMA" SQL_TOOL="$SQL_TOOL" sh "$ROOT/deploy/compose/temporal-schema.sh" >"$RUN/schema.log" 2>&1 \
    || { tail -n 30 "$RUN/schema.log" >&2; die "schema set-up failed (log: $RUN/schema.log)"; }
  log "schemas temporal and temporal_visibility up to date"
}

port_of() {
  case "$1" in
    frontend) echo "$PORT" ;; history) echo $((PORT + 1)) ;; matching) echo $((PORT + 2)) ;; worker) echo $((PORT + 6)) ;;
    *) die "unknown service $1 (one of: ${SERVICES[*]})" ;;
  esac
}

write_config() {
  mkdir -p "$RUN/config/dynamicconfig"
  cat >"$RUN/config/cluster.yaml" <<EOF
# written by scripts/cluster.sh
log:
  stdout: true
  level: warn

persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: $DB_USER
        password: ""
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: $DB_USER
        password: ""
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: 1h

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1

services:
  frontend:
    rpc:
      grpcPort: $PORT
      membershipPort: $((PORT + 30))
      httpPort: $((PORT + 10))
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: $((PORT + 1))
      membershipPort: $((PORT + 31))
      bindOnLocalHost: true
  matching:
    rpc:
      grpcPort: $((PORT + 2))
      membershipPort: $((PORT + 32))
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: $((PORT + 6))
      membershipPort: $((PORT + 36))
      bindOnLocalHost: true

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "$ADDRESS"

dcRedirectionPolicy:
  policy: noop

dynamicConfigClient:
  filepath: $RUN/config/dynamicconfig/cluster.yaml
  pollInterval: 10s
EOF
  cat >"$RUN/config/dynamicconfig/cluster.yaml" <<'EOF'
# written by scripts/cluster.sh
# Search attributes registered a moment ago are usable at once.
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
limit.maxIDLength:
  - value: 255
EOF
}

pid_of() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

# The service answers on its gRPC port (the frontend: the cluster health call).
wait_service() {
  local svc="$1" deadline=$((SECONDS + ${2:-90}))
  while [ $SECONDS -lt $deadline ]; do
    pid_of "$svc" >/dev/null || { tail -n 30 "$RUN/$svc.log" >&2; die "$svc exited at start-up (log: $RUN/$svc.log)"; }
    if [ "$svc" = frontend ]; then
      temporal_cli operator cluster health >/dev/null 2>&1 && return 0
    elif (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$svc")") 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  tail -n 30 "$RUN/$svc.log" >&2
  die "$svc did not serve within ${2:-90} s (log: $RUN/$svc.log)"
}

start_service() {
  local svc="$1"
  port_of "$svc" >/dev/null
  if pid_of "$svc" >/dev/null; then log "$svc already runs (pid $(pid_of "$svc"))"; return 0; fi
  # setsid: the services outlive the shell that started them and get no terminal signals.
  setsid "$SERVER_BIN" --config-file "$RUN/config/cluster.yaml" --allow-no-auth start --service "$svc" \
    >>"$RUN/$svc.log" 2>&1 </dev/null 8>&- &
  echo $! >"$RUN/$svc.pid"
  wait_service "$svc"
  log "$svc up (pid $(cat "$RUN/$svc.pid"), 127.0.0.1:$(port_of "$svc"))"
}

# The namespace and the search attributes: the script the compose file runs, against this cluster.
register() {
  local cli
  cli="$(temporal_cli_path)"
  TEMPORAL="$cli" TEMPORAL_NAMESPACE="${STEADFAST_CLUSTER_NAMESPACE:-default}" STEADFAST_SETUP_TIMEOUT=90 \
    temporal_env sh "$ROOT/deploy/compose/temporal-register.sh" 2>>"$RUN/register.log" \
    || { tail -n 20 "$RUN/register.log" >&2; die "namespace or search attributes not set up (log: $RUN/register.log)"; }
}

start() {
  local t0=$SECONDS
  build
  mkdir -p "$RUN"
  exec 8>"$RUN/.lock"
  flock 8
  pg start >/dev/null 8>&-
  schemas
  write_config
  local s
  for s in "${SERVICES[@]}"; do start_service "$s"; done
  register
  echo "$((SECONDS - t0))" >"$RUN/start-seconds"
  log "cluster up in $((SECONDS - t0)) s: frontend $ADDRESS, PostgreSQL 127.0.0.1:$PG_PORT"
  echo "$ADDRESS"
}

kill_service() {
  local svc="$1" pid
  pid="$(pid_of "$svc")" || die "$svc does not run"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$RUN/$svc.pid"
  log "SIGKILL $svc (pid $pid)"
}

stop() {
  local s pid
  for s in worker frontend matching history; do
    if pid="$(pid_of "$s")"; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      log "stopped $s"
    fi
    rm -f "$RUN/$s.pid"
  done
  pg stop
}

status() {
  local s ok=0
  for s in "${SERVICES[@]}"; do
    if pid="$(pid_of "$s")"; then echo "$s running pid $pid 127.0.0.1:$(port_of "$s")"; else echo "$s stopped"; ok=1; fi
  done
  return $ok
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  kill) kill_service "${2:?service}" ;;
  start-service) start_service "${2:?service}" ;;
  address) echo "$ADDRESS" ;;
  destroy) stop; pg destroy; rm -rf "$RUN"; log "removed $RUN" ;;
  *) echo "usage: $0 build|start|stop|status|kill SERVICE|start-service SERVICE|address|destroy" >&2; exit 2 ;;
esac
