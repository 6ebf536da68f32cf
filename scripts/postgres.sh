#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and local runs (never for production data).
#
#   scripts/postgres.sh start    # create if needed, start, print the URL (last stdout line)
#   scripts/postgres.sh stop     # stop it (data kept)
#   scripts/postgres.sh url      # print the URL
#   scripts/postgres.sh status   # exit 0 when running
#   scripts/postgres.sh destroy  # stop and delete the data directory
#
# Listens on 127.0.0.1:${STEADFAST_PG_PORT:-54329} only, trust authentication
# (local throwaway), database and user `steadfast`, fsync off for speed.
# Data: .tools/pgdata, or /tmp/steadfast-pg-PORT when the postgres user cannot
# reach .tools. initdb refuses root, so as root the cluster belongs to the
# `postgres` system user (created when missing). On a fresh Debian/Ubuntu machine
# without server binaries it runs `apt-get install -y postgresql` (as root).
# Idempotent: a second `start` only checks. Logs go to stderr; the URL to stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${STEADFAST_PG_PORT:-54329}"
DB=steadfast
PGUSER_NAME=steadfast
URL="postgresql://${PGUSER_NAME}:${PGUSER_NAME}@127.0.0.1:${PORT}/${DB}"
log() { printf 'postgres.sh: %s\n' "$*" >&2; }

find_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/pg_ctl" ]; then echo "$PG_BIN"; return 0; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return 0; fi
  return 1
}

ensure_bin() {
  if BIN="$(find_bin)"; then return 0; fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no PostgreSQL server binaries; installing the postgresql package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    # The package starts its own cluster on 5432; ours is separate and stays on $PORT.
    BIN="$(find_bin)" && return 0
  fi
  log "PostgreSQL server binaries not found (set PG_BIN or install postgresql)"
  exit 1
}

# As root, run cluster commands as an unprivileged OS user.
OSUSER=""
as_pg() { if [ -n "$OSUSER" ]; then runuser -u "$OSUSER" -- "$@"; else "$@"; fi; }

setup_user_and_dir() {
  if [ "$(id -u)" -eq 0 ]; then
    OSUSER=postgres
    if ! id "$OSUSER" >/dev/null 2>&1; then
      log "creating system user $OSUSER"
      useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin "$OSUSER" >&2
    fi
  fi
  DATA="${STEADFAST_PG_DIR:-$ROOT/.tools/pgdata}"
  mkdir -p "$(dirname "$DATA")"
  if [ -n "$OSUSER" ] && [ -z "${STEADFAST_PG_DIR:-}" ] && ! runuser -u "$OSUSER" -- test -x "$(dirname "$DATA")"; then
    DATA="/tmp/steadfast-pg-$PORT"
  fi
  mkdir -p "$DATA"
  if [ -n "$OSUSER" ]; then chown "$OSUSER" "$DATA"; fi
  chmod 700 "$DATA"
}

running() { [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  ensure_bin
  setup_user_and_dir
  # Parallel callers (several test runners) serialise here. The server must not
  # inherit fd 9, or it would hold the lock for its whole life (hence 9>&- below).
  exec 9>"/tmp/steadfast-pg-$PORT.lock"
  flock 9
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" --username="$PGUSER_NAME" --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if ! running; then
    log "starting on 127.0.0.1:$PORT"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null 9>&- || { tail -n 20 "$DATA/server.log" >&2 || true; exit 1; }
  fi
  local psql=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$PGUSER_NAME" -d postgres -v ON_ERROR_STOP=1 -tAq)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    "${psql[@]}" -c "CREATE DATABASE $DB" >/dev/null
  fi
  echo "$URL"
}

stop() {
  BIN="$(find_bin)" || exit 0
  setup_user_and_dir
  if running; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; log "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  status) BIN="$(find_bin)" || exit 1; setup_user_and_dir; running ;;
  destroy) stop; rm -rf "$DATA"; log "removed $DATA" ;;
  *) echo "usage: $0 start|stop|url|status|destroy" >&2; exit 2 ;;
esac
