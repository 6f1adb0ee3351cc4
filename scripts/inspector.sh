#!/usr/bin/env bash
# A real, standalone ironic-inspector 12.5 (API + conductor in one eventlet
# process, noauth, SQLite, in-process fake message bus, no PXE filter) on
# 127.0.0.1, talking to the Ironic at URL. It is the peer the benchmarks
# measure against (scripts/bench.sh) and the differential tests compare
# with (api_differential, hooks_differential: the hooks, [capabilities],
# [pci_devices] and [port_physnet] below are what hooks_differential gives
# the daemon too).
#   scripts/inspector.sh start DIR --ironic-url URL [--port P]   # default port 5050
#   scripts/inspector.sh stop DIR
#   scripts/inspector.sh status DIR
# Everything it writes is in DIR: config, database, locks, log, pid file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${DISCOVERD_PYENV_DIR:-/opt/ironic-discoverd-dev}/inspector-venv

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2; shift 2
port=5050 ironic_url=
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    --ironic-url) ironic_url=$2; shift 2 ;;
    *) usage ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/inspector.pid
# shellcheck source=lib/service.sh
. "$here/lib/service.sh"
running() { svc_running "$pidfile"; }
svc_control ironic-inspector "$pidfile" "$cmd" || usage
[ -n "$ironic_url" ] || usage

if running; then
  echo "ironic-inspector already running at http://127.0.0.1:$(cat "$dir/port")"
  exit 0
fi
"$here/pyenv.sh" inspector >/dev/null
start=$SECONDS
mkdir -p "$dir/locks"
echo "$port" > "$dir/port"
# transport_url = fake:// keeps the in-process RPC off RabbitMQ (without it
# the first start request hangs); see shared/spec/real-ironic.md.
cat > "$dir/inspector.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
standalone = true
listen_address = 127.0.0.1
listen_port = $port
introspection_delay = 0
transport_url = fake://
log_file = $dir/inspector.log
[ironic]
auth_type = none
endpoint_override = $ironic_url
[database]
connection = sqlite:///$dir/inspector.sqlite
[pxe_filter]
driver = noop
[processing]
store_data = database
processing_hooks = \$default_processing_hooks,lldp_basic,local_link_connection,extra_hardware,physnet_cidr_map
[capabilities]
boot_mode = true
[pci_devices]
alias = {"vendor_id": "8086", "product_id": "1572", "name": "nic_x710"}
alias = {"vendor_id": "10de", "product_id": "1eb8", "name": "gpu_t4"}
[port_physnet]
cidr_map = 100.64.77.0/24:physnet_diff
[oslo_concurrency]
lock_path = $dir/locks
CONF
if [ ! -f "$dir/inspector.sqlite" ]; then
  "$venv/bin/ironic-inspector-dbsync" --config-file "$dir/inspector.conf" upgrade >>"$dir/inspector.log" 2>&1
fi
setsid "$venv/bin/ironic-inspector" --config-file "$dir/inspector.conf" >>"$dir/inspector.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
if svc_wait_http ironic-inspector "http://127.0.0.1:$port/" "$pidfile" "$dir/inspector.log" 60; then
  echo "ironic-inspector ready at http://127.0.0.1:$port in $((SECONDS - start))s"
  exit 0
fi
"$0" stop "$dir" >/dev/null 2>&1 || true
exit 1
