#!/usr/bin/env bash
# Runs berth's whole test suite on a fresh Debian machine (as root: integration tests start real
# containers). Installs what it needs first: Debian packages and cargo tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
install_test_deps

echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo nextest run --workspace --all-targets --locked --no-fail-fast ${NEXTEST_ARGS:-}

echo "== doc tests"
cargo test --workspace --doc --locked
