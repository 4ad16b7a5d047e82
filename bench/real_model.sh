#!/usr/bin/env bash
# agent_loop on a real model: Qwen2.5-Coder-0.5B-Instruct on llama.cpp's llama-server, 2 CPU
# threads (scripts/lib/local_model.sh). Twenty tasks of five kinds at temperature 0.7, four
# seeds each, one at a time, over the demo's data: how many the model gets right, and where a
# step's time goes — the queue, the model (prompt reading and generation, from llama-server's
# own timings), the tools, and the rest (prompt assembly, the step's transaction and commit,
# the wake-ups). Prints a report and writes it to bench/REAL_MODEL.md, and the split to
# bench/real_model.json.
# Usage: bench/real_model.sh [RUNS_PER_KIND]   (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
source scripts/lib/local_model.sh
runs=${1:-4}

local_model_install
work=$(mktemp -d /tmp/agent_loop_real.XXXXXX); chmod 755 "$work"
trap 'cluster_stop "$work"; kill "${LOCAL_MODEL_PID:-}" 2>/dev/null; rm -rf "$work"' EXIT
local_model_start "$work"
cluster_start "$work" "agent_loop.memory_limit = 0" "log_min_messages = warning"
as_postgres "$PG_BIN/createdb" -h "$PGHOST" -p "$PGPORT" real
psql -X -qAt -d real -v ON_ERROR_STOP=1 -v url="http://127.0.0.1:$LOCAL_MODEL_PORT/v1" \
     -v model_name="$LOCAL_MODEL_NAME" -v runs="$runs" -v sample="$PWD/scripts/lib/sample_sales.sql" \
     >/dev/null <<'SQL'
CREATE EXTENSION agent_loop;
\i :sample
CREATE FUNCTION demo.units_sold(product text) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT sum(quantity) FROM demo.sales s WHERE s.product = lower(trim(units_sold.product)) $$;
SELECT agent_loop.register_tool('demo.units_sold(text)', 'How many units of one product were sold');
-- One model per seed. The tasks run one at a time, so each step's model time is its own.
SELECT agent_loop.add_model('seed' || s, :'url', :'model_name',
                            request_timeout => '300 seconds',
                            options => jsonb_build_object('temperature', 0.7, 'seed', s))
  FROM generate_series(1, :runs) s;
CREATE TABLE kinds (kind text, goal text, tools text[], schema jsonb);
INSERT INTO kinds VALUES
  ('revenue (the demo)', 'The table demo.sales has the columns day, product, quantity and price. '
   'Which product brought the most revenue (quantity times price), and how much?', '{sql_query}', NULL),
  ('registered function', 'How many units of mug were sold? Use the units_sold tool.', '{units_sold}', NULL),
  ('sql_query count', 'How many rows does the table demo.sales have?', '{sql_query}', NULL),
  ('output_schema', 'How many units of teapot were sold? Use the units_sold tool.', '{units_sold}',
   '{"type": "object", "properties": {"units": {"type": "integer"}}, "required": ["units"]}'),
  ('direct answer', 'What is 17 plus 25? Reply with just the number.', '{}', NULL);
CREATE TABLE runs (kind text, task_id bigint);
SQL
started=$(date +%s)
for seed in $(seq "$runs"); do
    for kind in $(psql -X -qAt -d real -c "SELECT row_number() OVER (ORDER BY kind) FROM kinds"); do
        id=$(psql -X -qAt -d real -c "INSERT INTO runs SELECT kind, agent_loop.submit(goal, model => 'seed$seed',
                 tools => tools, output_schema => schema)
               FROM (SELECT *, row_number() OVER (ORDER BY kind) AS k FROM kinds) k WHERE k = $kind
             RETURNING task_id")
        psql -X -qAt -d real -c "SELECT FROM agent_loop.wait($id, '300 seconds')" >/dev/null
    done
done
took=$(( $(date +%s) - started ))

# llama-server's own timings, summed over every request: prompt reading and generation.
read -r prompt_ms prompt_tokens gen_ms gen_tokens < <(python3 - "$work/llama-server.log" <<'PY'
import re, sys
p = pt = g = gt = 0.0
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", line)
    if m: p += float(m[1]); pt += int(m[2])
    m = re.search(r"\s eval time =\s*([\d.]+) ms /\s*(\d+) tokens", line)
    if m: g += float(m[1]); gt += int(m[2])
print(round(p), int(pt), round(g), int(gt))
PY
)

report=$(psql -X -q -d real -v prompt_ms="$prompt_ms" -v gen_ms="$gen_ms" <<'SQL'
\pset footer off
CREATE TEMP VIEW judged AS
SELECT r.kind, t.*, t.result->>'answer' AS answer,
       CASE r.kind
         WHEN 'revenue (the demo)' THEN t.result->>'answer' ILIKE '%kettle%' AND t.result->>'answer' ~ '19,?796'
         WHEN 'registered function' THEN t.result->>'answer' ~ ('\m' || demo.units_sold('mug') || '\M')
         WHEN 'sql_query count' THEN t.result->>'answer' ~ '\m400\M'
         WHEN 'output_schema' THEN (t.result->'output'->>'units')::numeric = demo.units_sold('teapot')
         WHEN 'direct answer' THEN t.result->>'answer' ~ '\m42\M'
       END AND t.status = 'succeeded' AS correct
  FROM runs r JOIN agent_loop.tasks t ON t.id = r.task_id;
\echo '### Right answers, by kind of task'
SELECT kind, count(*) FILTER (WHERE correct) || ' of ' || count(*) AS right,
       string_agg(DISTINCT CASE WHEN NOT correct THEN coalesce(error_code, 'wrong answer') END, ', ') AS otherwise
  FROM judged GROUP BY kind ORDER BY kind;
SELECT count(*) FILTER (WHERE correct) || ' of ' || count(*) AS right_in_all FROM judged;
\echo
\echo '### Where a step''s time goes (tasks with no failed model request; one at a time)'
\echo 'model: the call as the worker timed it; of it, llama-server''s own prompt reading and generation'
-- Not temporary: the split for bench/RESULTS.md is read from it below.
CREATE VIEW split AS
WITH clean AS (
    SELECT t.* FROM agent_loop.tasks t
     WHERE NOT EXISTS (SELECT FROM agent_loop.steps s WHERE s.task_id = t.id AND s.kind = 'error')),
s AS (
    SELECT sum(latency_ms) FILTER (WHERE phase = 'decide' AND input_tokens IS NOT NULL) AS model_ms,
           coalesce(sum(latency_ms) FILTER (WHERE phase = 'act'), 0) AS tools_ms,
           count(*) FILTER (WHERE phase = 'decide' AND input_tokens IS NOT NULL) AS steps
      FROM agent_loop.steps WHERE task_id IN (SELECT id FROM clean)),
t AS (SELECT count(*) AS tasks, sum(extract(epoch FROM finished_at - started_at) * 1000) AS run_ms FROM clean)
SELECT tasks, steps, run_ms / steps AS ms_per_step, model_ms / steps::numeric AS model_ms_per_step,
       tools_ms / steps::numeric AS tools_ms_per_step,
       (run_ms - model_ms - tools_ms) / steps AS database_ms_per_step,
       (run_ms - model_ms - tools_ms) / run_ms AS database_share
  FROM s, t;
SELECT tasks, steps, round(ms_per_step) AS ms_per_step, round(model_ms_per_step) AS model,
       round(tools_ms_per_step, 1) AS tools, round(database_ms_per_step, 1) AS database_and_loop,
       round(100 * database_share, 2) || ' %' AS database_share
  FROM split;
SELECT round(:prompt_ms / count(*)::numeric) AS prompt_reading_ms_per_request,
       round(:gen_ms / count(*)::numeric) AS generation_ms_per_request
  FROM agent_loop.steps WHERE phase = 'decide' AND input_tokens IS NOT NULL;
SELECT round(avg(extract(epoch FROM started_at - created_at) * 1000), 1) AS queued_ms_avg
  FROM agent_loop.tasks;
SQL
)
# The split for bench/RESULTS.md (bench/report.py reads it).
psql -X -qAt -d real -c "SELECT json_build_object('steps', steps, 'ms_per_step', ms_per_step,
    'model_ms_per_step', model_ms_per_step, 'tools_ms_per_step', tools_ms_per_step,
    'database_ms_per_step', database_ms_per_step, 'database_share', database_share,
    'date', current_date) FROM split" > bench/real_model.json
{
    echo "# agent_loop on a real model"
    echo
    echo "Written by \`bench/real_model.sh $runs\` on $(date -u +%Y-%m-%d): Qwen2.5-Coder-0.5B-Instruct Q4_K_M on"
    echo "llama.cpp's llama-server $LLAMA_CPP_VERSION, $(nproc) CPU threads, temperature 0.7, seeds 1..$runs,"
    echo "one task at a time, over the demo's data. $took s in all; the model read $prompt_tokens prompt"
    echo "tokens in $prompt_ms ms and wrote $gen_tokens tokens in $gen_ms ms."
    echo
    echo '```'
    echo "$report"
    echo '```'
} | tee bench/REAL_MODEL.md
