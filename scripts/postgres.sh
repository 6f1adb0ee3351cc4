#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and benchmarks:
#   scripts/postgres.sh start DIR [--port PORT]   # prints the URL, writes DIR/url
#   scripts/postgres.sh stop DIR                  # stops it by PID and removes DIR
#   scripts/postgres.sh pause DIR                 # stops it (fast shutdown), keeps DIR
#   scripts/postgres.sh resume DIR                # starts it again: same port, same data
# The cluster lives in DIR (initdb), listens on 127.0.0.1:PORT (default
# 15432) and on a Unix socket in DIR, trusts local connections (nothing
# but this machine can reach it) and has one superuser, `discoverd`, so
# tests may create a database each. Run as root, the server runs as the
# `postgres` user (Debian's package creates it) or `nobody`: PostgreSQL
# refuses to run as root.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|pause|resume DIR [--port PORT]" >&2; exit 2; }
port=15432
if [ "${3:-}" = "--port" ]; then port=${4:?--port needs a value}; fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -x "$bindir/pg_ctl" ] || { echo "postgres.sh: PostgreSQL is not installed (scripts/setup-system.sh installs it)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- "$@"
  else
    "$@"
  fi
}

# Starts the server of DIR on the port recorded in DIR/port.
serve() {
  local port
  port=$(cat "$dir/port")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
}

# Fast shutdown (open sessions are cut, as a server going down does).
halt() {
  local pidfile="$dir/data/postmaster.pid"
  if [ -f "$pidfile" ]; then
    pid=$(head -1 "$pidfile")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    user=postgres; id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$dir"
    as_owner test -w "$dir" || { echo "postgres.sh: $user cannot reach $dir (a parent directory is private?)" >&2; exit 1; }
  fi
  as_owner "$bindir/initdb" -D "$dir/data" -U discoverd --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  # Fast and throwaway, but still durable: fsync stays on so that the
  # numbers measured on it are the ones a real server gives.
  serve
  url="postgresql://discoverd@127.0.0.1:$port/postgres"
  echo "$url" >"$dir/url"
  echo "$url"
  ;;
stop)
  halt
  rm -rf "$dir"
  ;;
pause)
  [ -f "$dir/port" ] || { echo "postgres.sh: no cluster in $dir" >&2; exit 1; }
  halt
  ;;
resume)
  [ -f "$dir/port" ] || { echo "postgres.sh: no cluster in $dir" >&2; exit 1; }
  serve
  ;;
*)
  echo "usage: $0 start|stop|pause|resume DIR [--port PORT]" >&2; exit 2
  ;;
esac
