#!/usr/bin/env bash
# Creates (or reuses) the Python virtualenvs for a real OpenStack Ironic,
# Keystone and (for the benchmarks only) ironic-inspector, from PyPI, with
# pinned versions. Idempotent: a stamp file with the pins makes a re-run
# instant when nothing changed.
#   scripts/pyenv.sh                    # ironic and keystone (what the tests need)
#   scripts/pyenv.sh ironic inspector   # the ones named (also: clients)
# Location: $DISCOVERD_PYENV_DIR (default /opt/ironic-discoverd-dev).
set -euo pipefail
root=${DISCOVERD_PYENV_DIR:-/opt/ironic-discoverd-dev}
# Debian's Python (3.11): the versions below were checked with it; the
# pyenv interpreter first on PATH is a different build.
python=/usr/bin/python3

declare -A pins=(
  [ironic]="ironic==39.0.0 python-ironicclient==6.3.0"
  [keystone]="keystone==30.0.0 uwsgi==2.0.31"
  # The peer that scripts/bench.sh measures against (shared/spec/real-ironic.md).
  [inspector]="ironic-inspector==12.5.0 python-ironic-inspector-client==5.4.0"
  # The python clients that tests/tests/openstack_cli.rs runs against the
  # daemon: `openstack baremetal introspection ...` (the inspector client's
  # plugin for the openstack command).
  [clients]="python-openstackclient==8.2.0 python-ironic-inspector-client==5.4.0"
)

make_venv() {
  local name=$1 venv="$root/$1-venv" stamp
  stamp="$venv/.pins"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[$name]}" ]; then
    echo "pyenv: $name venv up to date ($venv)"
    return
  fi
  local start=$SECONDS
  echo "pyenv: installing ${pins[$name]} into $venv"
  mkdir -p "$root"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip setuptools wheel
  # shellcheck disable=SC2086  # the pin list is meant to split
  "$venv/bin/pip" install --quiet ${pins[$name]}
  echo "${pins[$name]}" > "$stamp"
  echo "pyenv: $name ready in $((SECONDS - start))s"
}

if [ $# -eq 0 ]; then set -- ironic keystone; fi
for n in "$@"; do
  [ -n "${pins[$n]:-}" ] || { echo "pyenv: unknown venv $n (ironic, keystone, inspector, clients)" >&2; exit 2; }
  make_venv "$n"
done
