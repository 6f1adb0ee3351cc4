#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root):
#   scripts/test.sh
# Installs the system packages it needs, starts a real Ironic on
# 127.0.0.1 (once for the whole run), then runs rustfmt,
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

# A real Ironic starts in the background while the code builds; the
# tests that need it read its address from DISCOVERD_TEST_IRONIC_URL.
services_dir=$(mktemp -d /tmp/discoverd-test-services.XXXXXX)
IRONIC_TEST_PORT=${IRONIC_TEST_PORT:-16386}
cleanup() {
  scripts/ironic-standalone.sh stop "$services_dir/ironic" >/dev/null 2>&1 || true
  rm -rf "$services_dir"
}
trap cleanup EXIT
step "starting a real standalone Ironic in the background ($services_dir)"
scripts/ironic-standalone.sh start "$services_dir/ironic" --port "$IRONIC_TEST_PORT" \
  >"$services_dir/start.log" 2>&1 &
services_pid=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build tests"
cargo test --workspace --locked --no-run

step "waiting for Ironic"
if wait "$services_pid"; then
  cat "$services_dir/start.log"
  export DISCOVERD_TEST_IRONIC_URL=http://127.0.0.1:$IRONIC_TEST_PORT
else
  cat "$services_dir/start.log" >&2
  echo "the real Ironic failed to start; its tests will fail under DISCOVERD_REQUIRE_PRIVILEGED=1" >&2
fi

step "cargo test"
cargo test --workspace --locked

step "done in $(( $(date +%s) - start ))s"
