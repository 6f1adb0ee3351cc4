#!/usr/bin/env bash
# Unknown-node `POST /v1/continue`, this tree against an older revision, in
# the same run (issue 15: "≥ 2× today"). As root:
#   scripts/bench-continue-baseline.sh [REV] [ROUNDS]
# REV defaults to 06d279f, main when issue 15 was filed (2026-12-02 04:33).
# Builds both release daemons (REV in a temporary worktree, its own target
# directory under target/), starts a real standalone Ironic 39 on a free
# loopback port, then runs the two daemons in turn, ROUNDS (default 3)
# times each, as `nobody`, with the pace bench's configuration (noauth, no
# firewall, hooks ramdisk_error,scheduler,validate_interfaces) and measures
# with wrk for 5 s at 1 connection (1 thread) and at 32 (2 threads), as the
# pace bench does: requests per second and the daemon's CPU time per
# request (utime + stime from /proc). wrk shares the 2 cores with the
# daemon. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/service.sh
. scripts/lib/service.sh
rev=${1:-06d279f}
rounds=${2:-3}
[ "$(id -u)" = 0 ] || { echo "run as root (the daemons run as nobody)" >&2; exit 2; }
command -v wrk >/dev/null || scripts/setup-system.sh
scripts/pyenv.sh ironic >/dev/null

work=$(mktemp -d /tmp/discoverd-continue-baseline.XXXXXX)
chmod 755 "$work"
worktree=$work/tree
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  scripts/ironic-standalone.sh stop "$work/ironic" >/dev/null 2>&1 || true
  git worktree remove --force "$worktree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building the release daemon of this tree and of $rev" >&2
cargo build --locked --release -p ironic-discoverd --bin ironic-discoverd >&2
cp target/release/ironic-discoverd "$work/current"
git worktree add --detach "$worktree" "$rev" >&2
CARGO_TARGET_DIR=$PWD/target/baseline-$rev cargo build --locked --release \
  --manifest-path "$worktree/Cargo.toml" -p ironic-discoverd --bin ironic-discoverd >&2
cp "target/baseline-$rev/release/ironic-discoverd" "$work/baseline"
chmod 755 "$work/current" "$work/baseline"

ironic_port=$(free_port)
scripts/ironic-standalone.sh start "$work/ironic" --port "$ironic_port" >&2
port=$(free_port)
# The daemon runs as nobody: its database directory is nobody's.
install -d -o nobody -g nogroup "$work/db"
cat > "$work/d.conf" <<EOF
[discoverd]
database = $work/db/d.sqlite
auth_strategy = noauth
manage_firewall = false
ironic_url = http://127.0.0.1:$ironic_port
listen_address = 127.0.0.1
listen_port = $port
processing_hooks = ramdisk_error,scheduler,validate_interfaces
EOF
# The pace bench's unknown-node report.
body='{"inventory":{"interfaces":[{"name":"eno1","mac_address":"52:54:99:00:00:01","ipv4_address":"192.0.2.61","has_carrier":true}],"cpu":{"count":4,"architecture":"x86_64","model_name":"bench","frequency":"2000"},"memory":{"total":8000000000,"physical_mb":8192},"disks":[{"name":"/dev/vda","size":21474836480,"rotational":false}],"bmc_address":"203.0.113.9"},"root_disk":{"name":"/dev/vda","size":21474836480},"error":null}'
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' "'$body'" > "$work/continue.lua"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # NAME CONNS
  local threads=1 t0 t1 out n rps
  [ "$2" -gt 1 ] && threads=2
  t0=$(cpu_ticks "$daemon_pid")
  out=$(wrk -t"$threads" -c"$2" -d5s -s "$work/continue.lua" "http://127.0.0.1:$port/v1/continue")
  t1=$(cpu_ticks "$daemon_pid")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  awk -v r="$round" -v d="$1" -v c="$2" -v rps="$rps" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN { printf "| %s | %s | %s | %.0f | %.1f |\n", r, d, c, rps, t * 1000000 / hz / n }'
}

echo "| round | daemon | conns | req/s | daemon CPU µs per request |"
echo "|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for which in baseline current; do
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
      env RUST_LOG=warn "$work/$which" --config-file "$work/d.conf" 2>>"$work/daemon.log" &
    daemon_pid=$!
    echo "$daemon_pid" > "$work/daemon.pid"
    svc_wait_http "$which daemon" "http://127.0.0.1:$port/" "$work/daemon.pid" "$work/daemon.log" 10
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d "$body" "http://127.0.0.1:$port/v1/continue")
    [ "$code" = 404 ] || { echo "$which answered $code to the unknown node, not 404" >&2; exit 1; }
    label=$which
    [ "$which" = baseline ] && label="$rev"
    measure "$label" 1
    measure "$label" 32
    kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
    rm -f "$work"/db/d.sqlite*
  done
done
