#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root):
#   scripts/test.sh
# Installs the system packages it needs, starts a real Ironic and a real
# Keystone on 127.0.0.1 (once for the whole run), then runs rustfmt,
# clippy and every test of the workspace. Privileged tests (network
# namespaces, nftables, dnsmasq) run as root; with
# DISCOVERD_REQUIRE_PRIVILEGED=1 (as CI sets it) a test that cannot get
# what it needs fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "system packages"
scripts/setup-system.sh

# Real Ironic + Keystone start in the background while the code builds;
# the tests that need them read their addresses from the env file.
services_dir=$(mktemp -d /tmp/discoverd-test-services.XXXXXX)
services_log="$services_dir/start.log"
cleanup() {
  if [ -x scripts/real-services.sh ]; then
    scripts/real-services.sh stop "$services_dir" >/dev/null 2>&1 || true
  fi
  rm -rf "$services_dir"
}
trap cleanup EXIT
services_pid=
if [ -x scripts/real-services.sh ]; then
  step "starting a real Ironic and Keystone in the background ($services_dir)"
  scripts/real-services.sh start "$services_dir" --ironic-port 16385 --keystone-port 15000 \
    >"$services_log" 2>&1 &
  services_pid=$!
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build tests"
cargo test --workspace --locked --no-run

if [ -n "$services_pid" ]; then
  step "waiting for Ironic and Keystone"
  if wait "$services_pid"; then
    export DISCOVERD_TEST_SERVICES_ENV="$services_dir/env"
    cat "$services_log"
  else
    cat "$services_log" >&2
    echo "real services failed to start" >&2
    if [ "${DISCOVERD_REQUIRE_PRIVILEGED:-0}" = 1 ]; then exit 1; fi
  fi
fi

step "cargo test"
cargo test --workspace --locked

step "done in $(( $(date +%s) - start ))s"
