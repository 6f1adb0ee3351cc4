#!/usr/bin/env bash
# A real, standalone OpenStack Ironic (API + conductor in one process,
# fake-hardware driver, noauth, SQLite, no message bus) on 127.0.0.1.
#   scripts/ironic-standalone.sh start DIR [--port P]   # default port 6385
#   scripts/ironic-standalone.sh stop DIR
#   scripts/ironic-standalone.sh status DIR
# Everything it writes is in DIR: config, database, locks, log, pid file,
# and DIR/env (source it to use the `baremetal` CLI against this Ironic).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${DISCOVERD_PYENV_DIR:-/opt/ironic-discoverd-dev}/ironic-venv

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2; shift 2
port=6385
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=$2; shift 2 ;;
    *) usage ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/ironic.pid
# shellcheck source=lib/service.sh
. "$here/lib/service.sh"
running() { svc_running "$pidfile"; }
svc_control ironic "$pidfile" "$cmd" || usage

if running; then
  echo "ironic already running at http://127.0.0.1:$(cat "$dir/port")"
  exit 0
fi
"$here/pyenv.sh" ironic >/dev/null
start=$SECONDS
mkdir -p "$dir/locks"
echo "$port" > "$dir/port"
# fake-hardware with fake/noop interfaces only: power and boot-device calls
# succeed and change power_state without any BMC (shared/spec/real-ironic.md).
cat > "$dir/ironic.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
rpc_transport = none
enabled_hardware_types = fake-hardware
enabled_bios_interfaces = fake
enabled_boot_interfaces = fake
enabled_console_interfaces = fake
enabled_deploy_interfaces = fake
enabled_firmware_interfaces = fake
enabled_inspect_interfaces = fake
enabled_management_interfaces = fake
enabled_network_interfaces = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = fake
enabled_rescue_interfaces = fake
enabled_storage_interfaces = noop
enabled_vendor_interfaces = fake
log_file = $dir/ironic.log
[api]
host_ip = 127.0.0.1
port = $port
api_workers = 1
[dhcp]
dhcp_provider = none
[conductor]
automated_clean = false
sync_power_state_interval = -1
[database]
connection = sqlite:///$dir/ironic.sqlite
[oslo_concurrency]
lock_path = $dir/locks
CONF
if [ ! -f "$dir/ironic.sqlite" ]; then
  "$venv/bin/ironic-dbsync" --config-file "$dir/ironic.conf" create_schema >>"$dir/ironic.log" 2>&1
fi
setsid "$venv/bin/ironic" --config-file "$dir/ironic.conf" >>"$dir/ironic.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
cat > "$dir/env" <<ENV
export OS_AUTH_TYPE=none
export OS_ENDPOINT=http://127.0.0.1:$port
export PATH=$venv/bin:\$PATH
ENV
if svc_wait_http ironic "http://127.0.0.1:$port/v1" "$pidfile" "$dir/ironic.log" 120; then
  echo "ironic ready at http://127.0.0.1:$port in $((SECONDS - start))s ($(
    curl -fsS "http://127.0.0.1:$port/v1" | python3 -c 'import json,sys; print("API", json.load(sys.stdin)["version"]["version"])'))"
  exit 0
fi
"$0" stop "$dir" >/dev/null 2>&1 || true
exit 1
