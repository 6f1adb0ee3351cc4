#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one command (as root; not part of the
# test suite):
#   scripts/bench.sh                  # all of them
#   scripts/bench.sh pace flood       # some: sync defence filter_cost api pace
#                                     # ironic_faults flood rules postgres
#                                     # list events
# Installs the system packages (wrk among them), builds the Ironic and
# ironic-inspector venvs, starts a real standalone Ironic 39 and a real
# ironic-inspector 12.5 on free loopback ports in a temporary directory
# (stopped on exit), then runs the firewall benchmark and the API + scale
# benchmark, which measures ironic-discoverd and ironic-inspector side by
# side in the same run. Markdown tables go to stdout; the output is also
# kept in $DISCOVERD_BENCH_LOG (default /tmp/discoverd-bench.log).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/service.sh
. scripts/lib/service.sh
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
log=${DISCOVERD_BENCH_LOG:-/tmp/discoverd-bench.log}
exec > >(tee "$log") 2>&1

step "system packages"
scripts/setup-system.sh

step "Python venvs (Ironic 39, ironic-inspector 12.5)"
scripts/pyenv.sh ironic inspector

all="sync defence filter_cost api pace ironic_faults flood rules postgres list events"
wanted=${*:-$all}
for b in $wanted; do
  case " $all " in *" $b "*) ;; *) echo "unknown benchmark $b (known: $all)" >&2; exit 2 ;; esac
done
want() { case " $wanted " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

services_dir=$(mktemp -d /tmp/discoverd-bench-services.XXXXXX)
# Its own directory: the server runs as another user, who must reach it
# (the services directory is private).
postgres_dir=$(mktemp -d /tmp/discoverd-bench-postgres.XXXXXX)
cleanup() {
  scripts/postgres.sh stop "$postgres_dir" >/dev/null 2>&1 || true
  rm -rf "$postgres_dir"
  scripts/inspector.sh stop "$services_dir/inspector" >/dev/null 2>&1 || true
  scripts/ironic-standalone.sh stop "$services_dir/ironic" >/dev/null 2>&1 || true
  rm -rf "$services_dir"
}
trap cleanup EXIT
ironic_port=$(free_port)
inspector_port=$(free_port)
while [ "$inspector_port" = "$ironic_port" ]; do inspector_port=$(free_port); done

step "starting Ironic and ironic-inspector ($services_dir)"
scripts/ironic-standalone.sh start "$services_dir/ironic" --port "$ironic_port"
scripts/inspector.sh start "$services_dir/inspector" --port "$inspector_port" \
  --ironic-url "http://127.0.0.1:$ironic_port"
export DISCOVERD_BENCH_IRONIC_URL=http://127.0.0.1:$ironic_port
export DISCOVERD_BENCH_INSPECTOR_URL=http://127.0.0.1:$inspector_port
# For CPU time and RSS of the peers (read from /proc).
DISCOVERD_BENCH_IRONIC_PID=$(cat "$services_dir/ironic/ironic.pid")
DISCOVERD_BENCH_INSPECTOR_PID=$(cat "$services_dir/inspector/inspector.pid")
export DISCOVERD_BENCH_IRONIC_PID DISCOVERD_BENCH_INSPECTOR_PID
# ironic-inspector's SQLite file: the list bench fills its nodes table.
export DISCOVERD_BENCH_INSPECTOR_DB=$services_dir/inspector/inspector.sqlite
# Ironic's API log, for the pace bench's requests per node.
export DISCOVERD_BENCH_IRONIC_LOG=$services_dir/ironic/ironic.log

# The package of each benchmark.
package() {
  case $1 in
    sync|defence|filter_cost) echo ironic-discoverd-fw-helper ;;
    *) echo ironic-discoverd ;;
  esac
}
# One release build of every wanted bench first, so the builds do not land
# in the middle of a measurement; built exactly as it is run below (a
# `--workspace` build unifies other features and cargo rebuilt each
# package again before its first bench).
step "building the benchmarks (release)"
for b in $wanted; do
  cargo bench --locked -p "$(package "$b")" --bench "$b" --no-run
done

failed=""
bench() {
  local pkg=$1 name=$2
  want "$name" || return 0
  step "$name: cargo bench -p $pkg --bench $name"
  # One failing benchmark does not cost the others their run.
  cargo bench --locked -p "$pkg" --bench "$name" || failed="$failed $name"
}
bench ironic-discoverd-fw-helper sync
bench ironic-discoverd-fw-helper defence
bench ironic-discoverd-fw-helper filter_cost
bench ironic-discoverd api
bench ironic-discoverd pace
bench ironic-discoverd ironic_faults
bench ironic-discoverd flood
bench ironic-discoverd rules
bench ironic-discoverd list
bench ironic-discoverd events
if want postgres; then
  POSTGRES_BENCH_PORT=${POSTGRES_BENCH_PORT:-$(free_port)}
  DISCOVERD_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$postgres_dir" --port "$POSTGRES_BENCH_PORT")
  export DISCOVERD_TEST_POSTGRES_URL
  bench ironic-discoverd postgres
fi

if [ -n "$failed" ]; then
  step "FAILED:$failed"
  exit 1
fi
step "done in $(( $(date +%s) - start ))s (output kept in $log)"
