#!/usr/bin/env bash
# Runs every test: formatting and lints, the pure-Rust core's unit tests, then the end-to-end
# suite against a real cluster. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --release --quiet -- -D warnings

echo "== unit tests (agent_loop_core, no PostgreSQL)"
unit_log=$(mktemp)
cargo test --release -p agent_loop_core 2>&1 | tee "$unit_log"
unit_passed=$(grep -Eo '[0-9]+ passed' "$unit_log" | awk '{s += $1} END {print s + 0}')
unit_failed=$(grep -Eo '[0-9]+ failed' "$unit_log" | awk '{s += $1} END {print s + 0}')

echo "== end-to-end tests (pg_test/)"
e2e_log=$(mktemp)
e2e_status=0
pg_test/run 2>&1 | tee "$e2e_log" || e2e_status=$?
e2e_passed=$(grep -Eo '^e2e: [0-9]+ passed' "$e2e_log" | grep -Eo '[0-9]+' || echo 0)
e2e_failed=$(grep -Eo '[0-9]+ failed' "$e2e_log" | tail -n 1 | grep -Eo '[0-9]+' || echo 1)

echo "tests: $((unit_passed + e2e_passed)) passed, $((unit_failed + e2e_failed)) failed"
[ "$unit_failed" -eq 0 ] && [ "$e2e_status" -eq 0 ]
