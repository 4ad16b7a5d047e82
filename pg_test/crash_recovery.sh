#!/usr/bin/env bash
# Crash recovery under load. Run by pg_test/run against its cluster (PGHOST, PGPORT set).
# 300 tasks of three steps, whose tool calls each insert one effect row, while the worker is
# killed with SIGKILL twice (the postmaster then restarts the whole server). Afterwards every
# task has ended exactly once, successfully; every tool call the log records has exactly one
# effect row, and no effect exists without its record.
set -uo pipefail
q() { psql -X -qAt -d regression -v ON_ERROR_STOP=1 "$@"; }
tasks=300

q <<'SQL'
CREATE TABLE crash_effects (tag text NOT NULL, turn int NOT NULL);
CREATE FUNCTION record_effect(tag text, turn int) RETURNS int
    LANGUAGE sql AS $$ INSERT INTO crash_effects VALUES (tag, turn) RETURNING turn $$;
SELECT agent_loop.register_tool('record_effect(text,int)', 'Record an effect') \g /dev/null
SQL
q -c "SELECT count(agent_loop.submit(format(
        'crash %s SCRIPT: [{\"delay_ms\": 40, \"calls\": [{\"name\": \"record_effect\", \"arguments\": {\"tag\": \"t%s\", \"turn\": 1}}]},
                           {\"delay_ms\": 40, \"calls\": [{\"name\": \"record_effect\", \"arguments\": {\"tag\": \"t%s\", \"turn\": 2}}]},
                           {\"delay_ms\": 40, \"answer\": \"done\"}]', i, i, i),
        model => 'scripted', tools => '{record_effect}')) FROM generate_series(1, $tasks) i" >/dev/null

kill_worker() {
    local pid
    pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'agent_loop worker' AND datname = 'regression'")
    [ -n "$pid" ] && kill -9 "$pid"
    # The postmaster restarts every process; wait until it accepts connections again.
    sleep 0.5
    for _ in $(seq 100); do q -c "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
sleep 0.4; kill_worker || { echo "crash: server did not come back"; exit 1; }
sleep 0.6; kill_worker || { echo "crash: server did not come back"; exit 1; }

for _ in $(seq 600); do
    left=$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE goal LIKE 'crash %' AND status IN ('queued', 'running')" 2>/dev/null)
    [ "$left" = 0 ] && break
    sleep 0.1
done

q <<SQL
SELECT format('tasks: %s, succeeded: %s, resumed after a crash: %s',
              count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE attempts > 1))
  FROM agent_loop.tasks WHERE goal LIKE 'crash %';
SQL
failures=$(q <<SQL
WITH effects AS (SELECT tag, turn, count(*) AS n FROM crash_effects GROUP BY tag, turn),
     records AS (SELECT s.content->>'arguments' AS args, count(*) AS n
                   FROM agent_loop.steps s JOIN agent_loop.tasks t ON t.id = s.task_id
                  WHERE t.goal LIKE 'crash %' AND s.kind = 'tool_result'
                  GROUP BY 1)
SELECT concat_ws(E'\n',
  (SELECT 'not succeeded: ' || count(*) FROM agent_loop.tasks
    WHERE goal LIKE 'crash %' AND status <> 'succeeded' HAVING count(*) > 0),
  (SELECT 'not $tasks tasks: ' || count(*) FROM agent_loop.tasks
    WHERE goal LIKE 'crash %' HAVING count(*) <> $tasks),
  (SELECT 'effects done twice: ' || count(*) FROM effects WHERE n > 1 HAVING count(*) > 0),
  (SELECT 'effect count ' || count(*) || ' <> ' || 2 * $tasks FROM crash_effects HAVING count(*) <> 2 * $tasks),
  (SELECT 'tool results ' || sum(n) || ' <> effects' FROM records
    HAVING sum(n) <> (SELECT count(*) FROM crash_effects)),
  (SELECT 'no task was resumed: the crash missed the load' FROM agent_loop.tasks
    WHERE goal LIKE 'crash %' HAVING count(*) FILTER (WHERE attempts > 1) = 0))
SQL
)
if [ -n "$failures" ]; then
    echo "crash: FAILED"; echo "$failures"; exit 1
fi
echo "crash: every task ended once, every effect exactly once with its step record"
