#!/usr/bin/env bash
# Installs the Debian packages that building, testing and the demo need.
# Idempotent: packages already present are not touched, and apt is not
# called at all when nothing is missing. Must run as root.
set -euo pipefail

# What each package is for:
#   nftables, iptables      `nft`/`iptables-save` to read the kernel filter back in tests,
#                           and iptables-nft-restore for the helper's iptables backend
#   libclang1-14            bindgen (rustables' build script) needs libclang
#   dnsmasq-base            a real DHCP server in the packet-level tests and the demo
#   isc-dhcp-client         dhclient, a real DHCP client for those tests
#   iproute2, util-linux    network namespaces, veth pairs, unshare/nsenter/setpriv
#   python3-venv, python3-dev, build-essential
#                           virtualenvs for the real Ironic and Keystone (uWSGI compiles)
#   curl, jq                the demo talks to the APIs and pretty-prints JSON
#   wrk                     HTTP load generator for the API benchmark (scripts/bench.sh)
#   man-db, groff-base      rendering the man pages (their test checks for warnings)
#   systemd                 systemd-analyze and systemd-socket-activate, for the units (never booted)
#   make, gzip              the install target and its test
#   postgresql              a throwaway PostgreSQL 15 for the shared-store tests (scripts/postgres.sh)
PACKAGES=(
  nftables iptables libclang1-14 dnsmasq-base isc-dhcp-client iproute2 util-linux
  python3-venv python3-dev build-essential curl jq man-db groff-base systemd make gzip wrk postgresql
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all ${#PACKAGES[@]} system packages present"
  exit 0
fi

echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Waits for another apt run instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends)
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get "${apt_opts[@]}" install "${missing[@]}"
echo "setup-system: done"
