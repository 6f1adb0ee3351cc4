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

# A real Ironic, a real Keystone and a real ironic-inspector 12.5 (on
# that Ironic) start in the background while the code builds; the tests
# that need them read DISCOVERD_TEST_IRONIC_URL, DISCOVERD_TEST_KEYSTONE_ENV
# and DISCOVERD_TEST_INSPECTOR_URL (DISCOVERD_TEST_OPENSTACK: the python
# clients' `openstack` command).
services_dir=$(mktemp -d /tmp/discoverd-test-services.XXXXXX)
# Its own directory: the server runs as another user, who must reach it.
postgres_dir=$(mktemp -d /tmp/discoverd-test-postgres.XXXXXX)
IRONIC_TEST_PORT=${IRONIC_TEST_PORT:-16386}
KEYSTONE_TEST_PORT=${KEYSTONE_TEST_PORT:-15001}
INSPECTOR_TEST_PORT=${INSPECTOR_TEST_PORT:-15050}
cleanup() {
  scripts/postgres.sh stop "$postgres_dir" >/dev/null 2>&1 || true
  scripts/ironic-standalone.sh stop "$services_dir/ironic" >/dev/null 2>&1 || true
  scripts/keystone.sh stop "$services_dir/keystone" >/dev/null 2>&1 || true
  scripts/inspector.sh stop "$services_dir/inspector" >/dev/null 2>&1 || true
  rm -rf "$services_dir"
}
trap cleanup EXIT
step "starting a real Ironic and a real Keystone in the background ($services_dir)"
# The venvs first, one pip at a time (they share pip's cache).
( scripts/pyenv.sh ironic keystone >"$services_dir/pyenv.log" 2>&1 &&
  scripts/ironic-standalone.sh start "$services_dir/ironic" --port "$IRONIC_TEST_PORT" \
    >"$services_dir/ironic.log" 2>&1 ) &
ironic_pid=$!
( while [ ! -f "$services_dir/pyenv.log" ] || ! grep -q "keystone venv\|keystone ready" "$services_dir/pyenv.log"; do
    sleep 1; kill -0 "$ironic_pid" 2>/dev/null || break
  done
  scripts/keystone.sh start "$services_dir/keystone" --port "$KEYSTONE_TEST_PORT" \
    >"$services_dir/keystone.log" 2>&1 ) &
keystone_pid=$!
# ironic-inspector and the python clients: their venvs once Ironic's and
# Keystone's are made (one pip at a time), the service once Ironic runs.
( while [ ! -f "$services_dir/pyenv.log" ] || ! grep -q "keystone venv\|keystone ready" "$services_dir/pyenv.log"; do
    sleep 1; kill -0 "$ironic_pid" 2>/dev/null || break
  done
  scripts/pyenv.sh inspector clients >"$services_dir/pyenv-inspector.log" 2>&1 || exit 1
  until grep -q "ironic ready" "$services_dir/ironic.log" 2>/dev/null; do
    kill -0 "$ironic_pid" 2>/dev/null || grep -q "ironic ready" "$services_dir/ironic.log" 2>/dev/null || exit 1
    sleep 1
  done
  scripts/inspector.sh start "$services_dir/inspector" --port "$INSPECTOR_TEST_PORT" \
    --ironic-url "http://127.0.0.1:$IRONIC_TEST_PORT" >"$services_dir/inspector.log" 2>&1 ) &
inspector_pid=$!

# A throwaway PostgreSQL for the shared-store tests (docs/postgres.md).
POSTGRES_TEST_PORT=${POSTGRES_TEST_PORT:-15432}
if DISCOVERD_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$postgres_dir" --port "$POSTGRES_TEST_PORT"); then
  export DISCOVERD_TEST_POSTGRES_URL
else
  unset DISCOVERD_TEST_POSTGRES_URL
  echo "PostgreSQL failed to start; its tests fail under DISCOVERD_REQUIRE_PRIVILEGED=1" >&2
fi

# A one-shot build: incremental caches would only take disk (gigabytes).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build tests"
cargo test --workspace --locked --no-run

step "waiting for Ironic, Keystone and ironic-inspector"
cat "$services_dir/pyenv.log" 2>/dev/null || true
if wait "$ironic_pid"; then
  cat "$services_dir/ironic.log"
  export DISCOVERD_TEST_IRONIC_URL=http://127.0.0.1:$IRONIC_TEST_PORT
else
  cat "$services_dir/ironic.log" >&2 || true
  echo "the real Ironic failed to start; its tests fail under DISCOVERD_REQUIRE_PRIVILEGED=1" >&2
  missing_services="${missing_services:-}Ironic (log: $services_dir/ironic.log, $services_dir/pyenv.log) "
fi
if wait "$keystone_pid"; then
  cat "$services_dir/keystone.log"
  export DISCOVERD_TEST_KEYSTONE_ENV=$services_dir/keystone/env
else
  cat "$services_dir/keystone.log" >&2 || true
  echo "the real Keystone failed to start; its tests fail under DISCOVERD_REQUIRE_PRIVILEGED=1" >&2
  missing_services="${missing_services:-}Keystone (log: $services_dir/keystone.log) "
fi

if wait "$inspector_pid"; then
  cat "$services_dir/pyenv-inspector.log" "$services_dir/inspector.log"
  export DISCOVERD_TEST_INSPECTOR_URL=http://127.0.0.1:$INSPECTOR_TEST_PORT
  export DISCOVERD_TEST_OPENSTACK=${DISCOVERD_PYENV_DIR:-/opt/ironic-discoverd-dev}/clients-venv/bin/openstack
else
  cat "$services_dir/pyenv-inspector.log" "$services_dir/inspector.log" >&2 || true
  echo "the real ironic-inspector failed to start; its tests fail under DISCOVERD_REQUIRE_PRIVILEGED=1" >&2
  missing_services="${missing_services:-}ironic-inspector (log: $services_dir/inspector.log, $services_dir/pyenv-inspector.log) "
fi

step "cargo test"
# Every fuzz target runs for a bounded time (common/src/fuzz.rs) and
# reports its executions; give them longer by hand with this variable.
export DISCOVERD_FUZZ_SECONDS=${DISCOVERD_FUZZ_SECONDS:-15}
export DISCOVERD_FUZZ_REPORT=$services_dir/fuzz.txt
# Tests that skip at run time (no root, no real service, a missing tool)
# append a `SKIPPED: test: reason` line here (ironic_discoverd_e2e::skipped).
export DISCOVERD_SKIP_REPORT=$services_dir/skipped.txt
: >"$DISCOVERD_SKIP_REPORT"
test_status=0
cargo test --workspace --locked 2>&1 | tee "$services_dir/cargo-test.log" || test_status=$?

step "done in $(( $(date +%s) - start ))s"
if [ -s "$services_dir/fuzz.txt" ]; then
  awk '{ printf "fuzz: %-28s %9d executions in %5.1f s, %d crashes\n", $1, $2, $3, $4; n += $2; c += $4 }
       END { printf "fuzz: %d executions, %d crashes\n", n, c }' "$services_dir/fuzz.txt"
fi
if [ -s "$DISCOVERD_SKIP_REPORT" ]; then
  echo "skipped at run time:"
  sed 's/^SKIPPED: /  /' "$DISCOVERD_SKIP_REPORT"
fi
if [ -n "${missing_services:-}" ]; then
  echo "real services missing: ${missing_services}-- their tests were skipped (failures under DISCOVERD_REQUIRE_PRIVILEGED=1)"
fi
# One closing line for the whole suite, summed over every test binary; a
# test that skipped at run time returned early (cargo counts it passed), so
# it moves from passed to skipped.
runtime_skips=$(wc -l <"$DISCOVERD_SKIP_REPORT")
awk -v rs="$runtime_skips" '/^test result:/ { for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p - rs, f, s + rs }' "$services_dir/cargo-test.log"
exit "$test_status"
