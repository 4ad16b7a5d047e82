#!/usr/bin/env bash
# The demo, end to end: builds and installs agent_loop, starts a throwaway cluster, loads sample
# sales data, has an agent answer a question about it as an unprivileged role, and prints the
# loop step by step, with each step's time.
#
# The model, by default: a real one on this machine, offline — Qwen2.5-Coder-0.5B-Instruct on
# llama.cpp's llama-server, built and downloaded once into ~/.cache/agent_loop
# (scripts/lib/local_model.sh; about 8 minutes the first time). Or point the demo elsewhere:
#   OPENAI_API_KEY=sk-...                                 (OpenAI, model gpt-4.1-mini), or
#   AGENT_LOOP_MODEL_URL=http://localhost:11434/v1 AGENT_LOOP_MODEL=llama3.1   (any OpenAI-
#   compatible server: Ollama, vLLM, llama.cpp, LM Studio; AGENT_LOOP_API_KEY if it wants one).
# --scripted uses the bundled scripted model server instead (also the fallback when the local
# model cannot be installed; the demo says so). --keep leaves the cluster running for psql.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
source scripts/lib/local_model.sh

keep=false scripted=false
for arg in "$@"; do
    case $arg in
        --keep) keep=true ;;
        --scripted) scripted=true ;;
        *) echo "usage: scripts/demo.sh [--scripted] [--keep]" >&2; exit 2 ;;
    esac
done

bash scripts/setup.sh

work=/tmp/agent_loop_demo
cluster_stop "$work" 2>/dev/null || true
for server in model local_model; do
    [ -f "$work/$server.pid" ] && kill "$(cat "$work/$server.pid")" 2>/dev/null || true
done
rm -rf "$work"; mkdir -p "$work"; chmod 755 "$work"

use_scripted() {
    model_server_start "$work"
    echo "$MODEL_PID" >"$work/model.pid"
    base_url="http://127.0.0.1:$MODEL_PORT/v1" model=demo key_env= options='{}'
    echo "demo: the agent talks to the bundled SCRIPTED model server (pg_test/model_server.py),"
    echo "      not a real model."
}
options='{"temperature": 0, "seed": 42}'
if $scripted; then
    use_scripted
elif [ -n "${AGENT_LOOP_MODEL_URL:-}" ]; then
    base_url=$AGENT_LOOP_MODEL_URL model=${AGENT_LOOP_MODEL:?set AGENT_LOOP_MODEL to the model name}
    export AGENT_LOOP_API_KEY=${AGENT_LOOP_API_KEY:-unused}
    key_env=AGENT_LOOP_API_KEY
    echo "demo: using the model \"$model\" at $base_url"
elif [ -n "${OPENAI_API_KEY:-}" ]; then
    base_url=https://api.openai.com/v1 model=${AGENT_LOOP_MODEL:-gpt-4.1-mini} key_env=OPENAI_API_KEY
    echo "demo: using OpenAI ($model)"
elif local_model_install && local_model_start "$work"; then
    echo "$LOCAL_MODEL_PID" >"$work/local_model.pid"
    base_url="http://127.0.0.1:$LOCAL_MODEL_PORT/v1" model=$LOCAL_MODEL_NAME key_env=
    echo "demo: using a real model on this machine: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) on"
    echo "      llama.cpp's llama-server, 2 CPU threads, temperature 0 (log: $work/llama-server.log)"
else
    echo "demo: the local model could not be installed or started (see above), so:"
    use_scripted
fi

PGPORT=$(free_port) cluster_start "$work"
as_postgres "$PG_BIN/createdb" -h "$PGHOST" -p "$PGPORT" demo

psql -X -q -d demo -v ON_ERROR_STOP=1 -v base_url="$base_url" -v model="$model" -v key_env="$key_env" \
     -v options="$options" -v sample="$PWD/scripts/lib/sample_sales.sql" <<'SQL'
\set QUIET on
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('demo', :'base_url', :'model', api_key_env => nullif(:'key_env', ''),
                            options => :'options', request_timeout => '120 seconds') \g /dev/null

-- Sample data, readable by an unprivileged analyst role.
\i :sample
CREATE ROLE analyst;
GRANT USAGE ON SCHEMA demo TO analyst;
GRANT SELECT ON demo.sales TO analyst;

SET ROLE analyst;
SELECT agent_loop.submit(
    'The table demo.sales has the columns day, product, quantity and price. Which product '
    'brought the most revenue (quantity times price), and how much?',
    model => 'demo', tools => '{sql_query}', max_steps => 6) AS task \gset
\set QUIET off
\echo
\echo Submitted task :task as role analyst. Waiting for it (server-side, no polling):
SELECT status, steps_done, result->>'answer' AS answer, error_code, error_message
  FROM agent_loop.wait(:task, '120 seconds');
\echo The loop, step by step (agent_loop.trace):
SELECT n, turn, phase, kind, left(summary, 160) AS summary, tokens, latency_ms
  FROM agent_loop.trace(:task);
\echo What the data says, for comparison:
SELECT product, sum(quantity * price) AS revenue FROM demo.sales GROUP BY product ORDER BY revenue DESC;
SELECT * FROM agent_loop.tasks_overview;
SQL

if $keep; then
    echo "demo: cluster left running: psql -h $PGHOST -p $PGPORT -U postgres demo"
else
    cluster_stop "$work"
    for server in model local_model; do
        [ -f "$work/$server.pid" ] && kill "$(cat "$work/$server.pid")" 2>/dev/null || true
    done
fi
