#!/usr/bin/env bash
# Runs every test: formatting and lints, the pure-Rust core's unit tests, the end-to-end suite
# against a real cluster, then the interop suite against a real model (llama-server, built and
# downloaded once into ~/.cache/agent_loop). Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release --quiet -- -D warnings

echo "== unit tests (agent_loop_core and the benchmark's model server, no PostgreSQL)"
unit_log=$(mktemp)
cargo test --release -p agent_loop_core -p agent_loop_bench_model 2>&1 | tee "$unit_log"
unit_passed=$(grep -Eo '[0-9]+ passed' "$unit_log" | awk '{s += $1} END {print s + 0}')
unit_failed=$(grep -Eo '[0-9]+ failed' "$unit_log" | awk '{s += $1} END {print s + 0}')

echo "== end-to-end tests (pg_test/)"
e2e_log=$(mktemp)
e2e_status=0
pg_test/run 2>&1 | tee "$e2e_log" || e2e_status=$?
read -r e2e_passed e2e_failed < <(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$e2e_log" | tail -n 1)
e2e_passed=${e2e_passed:-0} e2e_failed=${e2e_failed:-1}

echo "== interop: a real model on llama.cpp's llama-server, all three wire formats (pg_test/interop/)"
interop_log=$(mktemp)
interop_status=0
pg_test/interop/run 2>&1 | tee "$interop_log" || interop_status=$?
read -r interop_passed interop_failed < <(sed -n 's/^interop: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$interop_log" | tail -n 1)
interop_passed=${interop_passed:-0} interop_failed=${interop_failed:-1}

passed=$((unit_passed + e2e_passed + interop_passed))
failed=$((unit_failed + e2e_failed + interop_failed))
echo "tests: $passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$e2e_status" -ne 0 ] || [ "$interop_status" -ne 0 ]; then
    exit 1
fi
