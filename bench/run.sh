#!/usr/bin/env bash
# The benchmark: a throwaway cluster (fsync on) with agent_loop preloaded, the benchmark's model
# server (bench/model) twice (answering at once, and after 5 s), the peer queues and the Node.js
# they need from npm, the agent stacks from PyPI (bench/agents, a virtualenv cached beside the
# local model); runs the workloads of bench/bench.py, then the workload on a real model
# (bench/real_model.sh: bench/REAL_MODEL.md, where a step's time goes when the model is real;
# SKIP_REAL_MODEL=1 leaves it out), prints the table and writes bench/RESULTS.md and
# bench/results.svg.
# Usage: bench/run.sh   (BENCH_TASKS=2000 BENCH_RUNS=3 BENCH_IN_FLIGHT=10000 BENCH_PEER_JOBS=20000
#                        BENCH_STACK_TASKS=400 to change)
#        SKIP_SETUP=1 bench/run.sh   (the extension is already built and installed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
[ -n "${SKIP_SETUP:-}" ] || bash scripts/setup.sh
command -v node >/dev/null || {
    echo "bench: installing nodejs and npm"
    apt-get install -y -qq nodejs npm >/dev/null
}
(cd bench/peers && npm install --no-audit --no-fund --loglevel=error >/dev/null)
cache=${AGENT_LOOP_CACHE:-$HOME/.cache/agent_loop}
venv=$cache/bench-venv-$(sha256sum bench/agents/requirements.txt | cut -c1-12)
if [ ! -x "$venv/bin/python" ]; then
    echo "bench: installing the agent stacks (bench/agents/requirements.txt) into $venv"
    python3 -m venv "$venv.tmp" && "$venv.tmp/bin/pip" install -q -r bench/agents/requirements.txt
    rm -rf "$venv"; mv "$venv.tmp" "$venv"
fi

work=$(mktemp -d /tmp/agent_loop_bench.XXXXXX); chmod 755 "$work"
trap 'cluster_stop "$work"; kill "${FAST_PID:-}" "${SLOW_PID:-}" 2>/dev/null; rm -rf "$work"' EXIT
bench_model_start "$work" --request-log "$work/requests.log"
FAST_PID=$MODEL_PID FAST_PORT=$MODEL_PORT
mkdir -p "$work/slow"
bench_model_start "$work/slow" --latency-ms 5000
SLOW_PID=$MODEL_PID SLOW_PORT=$MODEL_PORT
cluster_start "$work" "shared_buffers = 256MB" "max_wal_size = 4GB" "agent_loop.max_in_flight = 64"
as_postgres "$PG_BIN/createdb" -h "$PGHOST" -p "$PGPORT" bench
psql -X -qAt -d bench -v ON_ERROR_STOP=1 -v url="http://127.0.0.1:$FAST_PORT/v1" >/dev/null <<'SQL'
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('echo', :'url', 'echo', max_concurrency => 64);
SELECT agent_loop.add_model('scripted', :'url', 'scripted', max_concurrency => 64);
CREATE FUNCTION noop(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
SELECT agent_loop.register_tool('noop(int)', 'Returns its argument');
CREATE FUNCTION payload(x int) RETURNS text LANGUAGE sql
    AS $$SELECT left(string_agg(md5(x::text || i), ''), 500) FROM generate_series(1, 16) i$$;
SELECT agent_loop.register_tool('payload(int)', 'Returns 500 bytes');
SQL
CLUSTER_DIR=$work FAST_URL="http://127.0.0.1:$FAST_PORT/v1" SLOW_URL="http://127.0.0.1:$SLOW_PORT/v1" \
    SLOW_SECONDS=5 STACKS_PYTHON="$venv/bin/python" REQUEST_LOG="$work/requests.log" MODEL_PID=$FAST_PID \
    "$venv/bin/python" bench/bench.py
cluster_stop "$work"
if [ -z "${SKIP_REAL_MODEL:-}" ]; then
    rm -f bench/real_model.json
    bash bench/real_model.sh || echo "bench: the real-model workload could not run (see above)"
fi
python3 bench/report.py
