#!/usr/bin/env bash
# Durability under faults. Run by pg_test/run against its cluster (PGHOST, PGPORT set) after
# the SQL files. Each scenario submits a load of three-step tasks whose two tool calls each
# insert one effect row, breaks something in the middle, and then checks that
#   - every task ended exactly once, successfully (none lost, stuck or finished twice);
#   - every tool call the step log records has exactly one effect row, and no effect exists
#     without its record;
#   - the fault really hit the load (some tasks were resumed).
# Scenarios:
#   kill9      SIGKILL of the worker, twice (the postmaster restarts the whole server).
#   points     a crash injected at each point of a step's life, one after the other.
#   immediate  step_commit = async, then pg_ctl stop -m immediate; tasks seen ended before the
#              crash are still ended after it (terminal transitions are always durable).
#   sigterm    pg_terminate_backend of the worker (it hands its tasks back at once), then a
#              fast shutdown and restart.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../scripts/lib/cluster.sh"
data=$PGHOST/data
log=$PGHOST/server.log
q() { psql -X -qAt -d regression -v ON_ERROR_STOP=1 "$@"; }
failed=0

q <<'SQL'
CREATE TABLE crash_effects (tag text NOT NULL, turn int NOT NULL);
CREATE FUNCTION record_effect(tag text, turn int) RETURNS int
    LANGUAGE sql AS $$ INSERT INTO crash_effects VALUES (tag, turn) RETURNING turn $$;
SELECT agent_loop.register_tool('record_effect(text,int)', 'Record an effect') \g /dev/null
-- submit_load(scenario, n, run_after): n tasks named '<scenario> <i>'; returns the first id.
CREATE FUNCTION submit_load(scenario text, n int, run_after timestamptz DEFAULT now()) RETURNS bigint
LANGUAGE sql AS $$
  SELECT min(agent_loop.submit(format(
      '%s %s SCRIPT: [{"delay_ms": 30, "calls": [{"name": "record_effect", "arguments": {"tag": "%s-%s", "turn": 1}}]},
                      {"delay_ms": 30, "calls": [{"name": "record_effect", "arguments": {"tag": "%s-%s", "turn": 2}}]},
                      {"delay_ms": 30, "answer": "done"}]', scenario, i, scenario, i, scenario, i),
      model => 'scripted', tools => '{record_effect}', run_after => run_after))
    FROM generate_series(1, n) i
$$;
-- What is wrong with a scenario's tasks, one line per problem (nothing when all is well).
CREATE FUNCTION durability_problems(scenario text, expected int) RETURNS SETOF text LANGUAGE sql AS $$
  WITH tasks AS (SELECT * FROM agent_loop.tasks WHERE goal LIKE scenario || ' %'),
       effects AS (SELECT tag, turn, count(*) AS n FROM crash_effects
                    WHERE tag LIKE scenario || '-%' GROUP BY tag, turn),
       records AS (SELECT (c.content->>'arguments')::jsonb->>'tag' AS tag,
                          ((c.content->>'arguments')::jsonb->>'turn')::int AS turn, count(*) AS n
                     FROM agent_loop.steps c
                     JOIN tasks t ON t.id = c.task_id
                     JOIN agent_loop.steps r ON r.task_id = c.task_id AND r.kind = 'tool_result'
                                            AND r.content->>'call_id' = c.content->>'call_id'
                    WHERE c.kind = 'tool_call' GROUP BY 1, 2),
       reflections AS (SELECT task_id, count(*) AS n FROM agent_loop.reflections
                        WHERE task_id IN (SELECT id FROM tasks) GROUP BY task_id)
  SELECT 'tasks: ' || count(*) || ', not ' || expected FROM tasks HAVING count(*) <> expected
  UNION ALL
  SELECT 'not succeeded: ' || count(*) || ' (' || string_agg(DISTINCT status::text, ', ') || ')'
    FROM tasks WHERE status <> 'succeeded' HAVING count(*) > 0
  UNION ALL
  SELECT 'finished more than once: task ' || task_id FROM reflections WHERE n > 1
  UNION ALL
  SELECT format('effect %s/%s: %s effect rows, %s step records', coalesce(e.tag, r.tag),
                coalesce(e.turn, r.turn), coalesce(e.n, 0), coalesce(r.n, 0))
    FROM effects e FULL JOIN records r ON r.tag = e.tag AND r.turn = e.turn
   WHERE e.n IS DISTINCT FROM 1 OR r.n IS DISTINCT FROM 1
  UNION ALL
  SELECT 'effects: ' || count(*) || ', not ' || 2 * expected FROM effects HAVING count(*) <> 2 * expected
  UNION ALL
  SELECT 'no task was resumed: the fault missed the load' FROM tasks
  HAVING count(*) FILTER (WHERE attempts > 1) = 0
$$;
SQL
[ $? -eq 0 ] || exit 1

server_up() {
    for _ in $(seq 200); do q -c "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "the server did not come back"; return 1
}
worker_pid() {
    q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'agent_loop worker' AND datname = 'regression'" 2>/dev/null
}
drain() {
    for _ in $(seq 900); do
        left=$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE goal LIKE '$1 %' AND status IN ('queued', 'running')" 2>/dev/null)
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
}
verdict() {
    local scenario=$1 n=$2 problems
    drain "$scenario"
    problems=$(q -c "SELECT * FROM durability_problems('$scenario', $n)" 2>&1)
    summary=$(q -c "SELECT format('%s tasks, %s resumed after the fault', count(*), count(*) FILTER (WHERE attempts > 1))
                      FROM agent_loop.tasks WHERE goal LIKE '$scenario %'" 2>&1)
    if [ -n "$problems" ]; then
        echo "FAILED $scenario: $summary"; echo "$problems" | sed 's/^/    /'; failed=1
    else
        echo "ok     $scenario: $summary${3:+; $3}"
    fi
}

# --- kill9 ----------------------------------------------------------------------------------
q -c "SELECT submit_load('kill9', 300)" >/dev/null
for delay in 0.4 0.6; do
    sleep $delay
    pid=$(worker_pid); [ -n "$pid" ] && kill -9 "$pid"
    sleep 0.5; server_up || exit 1
done
verdict kill9 300

# --- points: a crash at each point of a step's life, under a background load ---------------
points=(claimed decided acted stepped finishing finished)
q -c "SELECT submit_load('points', 150)" >/dev/null
first=$(q -c "SELECT submit_load('targets', ${#points[@]}, now() + interval '1 day')")
plan=$(for i in "${!points[@]}"; do printf '%s:crash:%s,' "${points[$i]}" $((first + i)); done)
q -c "ALTER SYSTEM SET agent_loop.fault_injection = '${plan%,}'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
crashes=0
for i in "${!points[@]}"; do
    # One target at a time: a crash re-claims every task in flight, and a fault fires only in
    # a task's first claim.
    before=$(grep -c "fault injection: crash at ${points[$i]} " "$log")
    q -c "UPDATE agent_loop.tasks SET run_after = now() WHERE id = $((first + i))" \
      -c "SELECT agent_loop._wake_worker()" >/dev/null
    for _ in $(seq 100); do
        [ "$(grep -c "fault injection: crash at ${points[$i]} " "$log")" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(grep -c "fault injection: crash at ${points[$i]} " "$log")" -gt "$before" ] && crashes=$((crashes + 1))
    sleep 0.5; server_up || exit 1
done
q -c "ALTER SYSTEM RESET agent_loop.fault_injection" -c "SELECT pg_reload_conf()" >/dev/null
verdict points 150 "crashed at $crashes of ${#points[@]} points"
verdict targets ${#points[@]}
[ "$crashes" -eq ${#points[@]} ] || { echo "FAILED points: only $crashes crashes happened"; failed=1; }

# --- immediate: async step commits, then an immediate shutdown -------------------------------
q -c "ALTER SYSTEM SET agent_loop.step_commit = 'async'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
q -c "SELECT submit_load('immediate', 300)" >/dev/null
# Crash once some tasks have ended and others run (read-only polls: they flush no WAL).
for _ in $(seq 100); do
    [ "$(q -c "SELECT count(*) FILTER (WHERE status = 'succeeded') >= 32
                      AND count(*) FILTER (WHERE status = 'running') > 0
                 FROM agent_loop.tasks WHERE goal LIKE 'immediate %'")" = t ] && break
    sleep 0.05
done
# Read-only: this session writes nothing that would flush the WAL before the crash.
ended_before=$(q -c "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM agent_loop.tasks
                     WHERE goal LIKE 'immediate %' AND status IN ('succeeded', 'failed', 'cancelled')")
as_postgres "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
server_up || exit 1
lost=$(q -c "SELECT count(*) FROM unnest(string_to_array('$ended_before', ',')) e
              LEFT JOIN agent_loop.tasks t ON t.id || ':' || t.status = e
             WHERE e <> '' AND t.id IS NULL")
q -c "ALTER SYSTEM RESET agent_loop.step_commit" -c "SELECT pg_reload_conf()" >/dev/null
verdict immediate 300 "$(tr ',' '\n' <<<"$ended_before" | grep -c :) had ended before the crash, $lost of them lost"
[ "$lost" = 0 ] || { echo "FAILED immediate: $lost terminal transitions were lost"; failed=1; }
[ -n "$ended_before" ] || { echo "FAILED immediate: no task had ended before the crash"; failed=1; }

# --- sigterm: the worker hands its tasks back; then a fast shutdown --------------------------
q -c "SELECT submit_load('sigterm', 300)" >/dev/null
sleep 0.5
pid=$(worker_pid)
q -c "SELECT pg_terminate_backend($pid)" >/dev/null
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
still_leased=$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE lease_worker = $pid AND status = 'running'")
q -c "SELECT agent_loop._wake_worker()" >/dev/null   # starts a worker at once
sleep 0.5
as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
server_up || exit 1
verdict sigterm 300 "$still_leased task(s) still leased to the stopped worker"
[ "$still_leased" = 0 ] || { echo "FAILED sigterm: the stopped worker kept $still_leased leases"; failed=1; }

exit $failed
