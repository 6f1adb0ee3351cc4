#!/usr/bin/env bash
# The main job, shown end to end on one machine (run as root):
#   scripts/demo.sh
# Installs what it needs, builds, starts a real standalone Ironic, the
# firewall helper (in a private network namespace whose bridge stands in
# for the provisioning network) and the daemon (as an unprivileged user
# with no capabilities); enrolls fake-hardware nodes, introspects two of
# them, plays the ramdisk with both payload formats, and shows the kernel
# filter, the statuses and what landed in Ironic. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

IRONIC_PORT=${IRONIC_PORT:-16385}
API_PORT=${API_PORT:-15050}
DAEMON_ID=64050           # the daemon's uid/gid (setpriv needs no passwd entry)
NS=discoverd-demo-$$
BRIDGE=br-demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

say "Installing system packages, Python venv for Ironic, building"
scripts/setup-system.sh
scripts/pyenv.sh ironic
cargo build --workspace --bins --quiet
bin=$repo/target/debug

work=$(mktemp -d /tmp/discoverd-demo.XXXXXX)
chmod 755 "$work"
helper_pid= daemon_pid=
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$helper_pid" ] && kill -TERM "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
  scripts/ironic-standalone.sh stop "$work/ironic" >/dev/null 2>&1
  ip netns del "$NS" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say "Starting a real standalone Ironic on 127.0.0.1:$IRONIC_PORT"
scripts/ironic-standalone.sh start "$work/ironic" --port "$IRONIC_PORT"
# shellcheck disable=SC1091
. "$work/ironic/env"

say "A private network namespace with bridge $BRIDGE standing in for the provisioning network"
ip netns add "$NS"
ip -n "$NS" link add "$BRIDGE" type bridge
ip -n "$NS" link set "$BRIDGE" up
ip -n "$NS" addr add 192.0.2.1/24 dev "$BRIDGE"

mkdir -p "$work/db"
chown "$DAEMON_ID:$DAEMON_ID" "$work/db"
cat > "$work/discoverd.conf" <<CONF
[discoverd]
database = $work/db/discoverd.sqlite
auth_strategy = noauth
ironic_url = http://127.0.0.1:$IRONIC_PORT
listen_address = 127.0.0.1
listen_port = $API_PORT
dnsmasq_interface = $BRIDGE
firewall_helper_socket = $work/fw.sock
firewall_update_period = 2
processing_hooks = ramdisk_error,scheduler,validate_interfaces

[fw_helper]
socket_path = $work/fw.sock
socket_group = $DAEMON_ID
allowed_uid = $DAEMON_ID
user = nobody
interfaces = $BRIDGE
CONF

say "Starting ironic-discoverd-fw-helper (root → nobody with CAP_NET_ADMIN only)"
ip netns exec "$NS" "$bin/ironic-discoverd-fw-helper" --config-file "$work/discoverd.conf" 2>"$work/helper.log" &
helper_pid=$!
for _ in $(seq 50); do [ -S "$work/fw.sock" ] && break; sleep 0.1; done
grep -E 'CapEff|CapBnd|NoNewPrivs|^Uid' "/proc/$helper_pid/status" | sed 's/^/  helper /'

say "Starting ironic-discoverd as uid $DAEMON_ID with no capabilities"
setpriv --reuid=$DAEMON_ID --regid=$DAEMON_ID --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
  "$bin/ironic-discoverd" --config-file "$work/discoverd.conf" 2>"$work/daemon.log" &
daemon_pid=$!
api=http://127.0.0.1:$API_PORT
for _ in $(seq 100); do curl -fsS "$api/" >/dev/null 2>&1 && break; sleep 0.1; done
grep -E 'CapEff|^Uid' "/proc/$daemon_pid/status" | sed 's/^/  daemon /'

say "Enrolling three fake-hardware nodes in Ironic, each with one port"
declare -a uuids macs bmcs
for i in 0 1 2; do
  macs[$i]=52:54:00:de:00:0$i
  bmcs[$i]=192.0.2.1$i
  uuids[$i]=$(baremetal node create --driver fake-hardware --name "demo-node-$i" \
    --driver-info ipmi_address="${bmcs[$i]}" -f value -c uuid)
  baremetal port create "${macs[$i]}" --node "${uuids[$i]}" -f value -c uuid >/dev/null
  baremetal node manage --wait 60 "${uuids[$i]}" >/dev/null
  echo "  demo-node-$i ${uuids[$i]}  BMC ${bmcs[$i]}  MAC ${macs[$i]}"
done

nft_set() { ip netns exec "$NS" nft -j list set inet ironic_discoverd denied 2>/dev/null | jq -c '[.nftables[].set.elem // empty] | flatten'; }
wait_set() {
  for _ in $(seq 100); do [ "$(nft_set)" = "$1" ] && return 0; sleep 0.1; done
  echo "  (filter did not reach $1; it is $(nft_set))"; return 1
}

say "Before: deny mode drops DHCP from every known node that is not being introspected"
wait_set "[\"${macs[0]}\",\"${macs[1]}\",\"${macs[2]}\"]"
run ip netns exec "$NS" nft list table inet ironic_discoverd

say "Starting introspection of demo-node-0 and demo-node-1"
for i in 0 1; do
  run curl -sS -o /dev/null -w '  HTTP %{http_code}\n' -X POST "$api/v1/introspection/${uuids[$i]}"
done
wait_set "[\"${macs[2]}\"]"
echo "  filter during introspection (nodes 0 and 1 may PXE-boot, node 2 may not): $(nft_set)"
run curl -sS "$api/v1/introspection/${uuids[0]}"; echo

say "Playing the ramdisk: discoverd 1.0 flat payload for node 0"
run curl -sS -X POST "$api/v1/continue" -H 'Content-Type: application/json' -d @- <<JSON; echo
{"interfaces": {"em1": {"mac": "${macs[0]}", "ip": "192.0.2.50"}, "em2": {"mac": "52:54:00:de:0f:00", "ip": ""}},
 "ipmi_address": "${bmcs[0]}", "cpu_arch": "x86_64", "memory_mb": 12288, "cpus": 4, "local_gb": 464}
JSON

say "Playing the ramdisk: ironic-python-agent inventory payload for node 1"
run curl -sS -X POST "$api/v1/continue" -H 'Content-Type: application/json' -d @- <<JSON; echo
{"inventory": {"interfaces": [{"name": "eno1", "mac_address": "${macs[1]}", "ipv4_address": "192.0.2.51", "has_carrier": true},
                              {"name": "eno2", "mac_address": "52:54:00:de:0f:01", "ipv4_address": "192.0.2.52", "has_carrier": true}],
               "cpu": {"count": 16, "architecture": "x86_64", "model_name": "Demo CPU"},
               "memory": {"total": 68719476736, "physical_mb": 65536},
               "disks": [{"name": "/dev/sda", "size": 500107862016, "rotational": true}],
               "bmc_address": "${bmcs[1]}", "boot": {"current_boot_mode": "uefi", "pxe_interface": "01-${macs[1]//:/-}"}},
 "boot_interface": "01-${macs[1]//:/-}", "error": null}
JSON

for i in 0 1; do
  for _ in $(seq 100); do
    [ "$(curl -fsS "$api/v1/introspection/${uuids[$i]}" | jq -r .finished)" = true ] && break; sleep 0.2
  done
done

say "After: statuses"
for i in 0 1; do curl -sS "$api/v1/introspection/${uuids[$i]}" | jq -c '{uuid, finished, error, state}'; done

say "After: the filter closes again for the finished nodes"
# Deny mode holds every port Ironic knows that is not under introspection:
# the three enrolled ones plus the port introspection just created for
# node 1's second NIC (eno2 had an IP address, so it is a valid interface).
ironic_macs=$(baremetal port list -f json -c Address | jq -c '[.[] | (.Address // .address)] | sort')
wait_set "$ironic_macs" || true
echo "  Ironic ports: $ironic_macs"
echo "  deny set:     $(nft_set)"

say "After: what landed in Ironic"
for i in 0 1; do
  run baremetal node show "${uuids[$i]}" -f json -c name -c properties -c extra -c power_state | jq -c .
  run baremetal port list --node "${uuids[$i]}" -f value -c Address
done

say "Summary"
echo "  2 nodes introspected against Ironic $(curl -fsS "http://127.0.0.1:$IRONIC_PORT/v1" | jq -r .version.version),"
echo "  properties and ports written back, DHCP filter opened and closed per node in the kernel,"
echo "  daemon unprivileged (CapEff 0), helper with CAP_NET_ADMIN only. Cleaning up."
