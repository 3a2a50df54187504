#!/usr/bin/env bash
# Runs berth's whole test suite on a fresh Debian machine (as root: integration tests start real
# containers). Installs what it needs first: Debian packages and cargo tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
install_test_deps

# A fresh clone never reuses incremental state: skip writing it (GBs of target/ on CI).
if [[ "${CI:-}" == true ]]; then
    export CARGO_INCREMENTAL=0
fi

echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo nextest run --workspace --all-targets --locked --no-fail-fast ${NEXTEST_ARGS:-}

echo "== doc tests"
cargo test --workspace --doc --locked
