#!/usr/bin/env bash
# The load spike of the durability suite: TASKS tasks (default 100,000) submitted in one burst
# by CLIENTS concurrent sessions (pgbench) while one worker drains them against an instant
# model. Prints the submit latency while the worker claims, lock waits seen during the burst,
# the drain rate, the dead tuples of the hot tables as the drain goes, then checks that every
# task ran exactly once and times prune() of them all. Exits non-zero if a task was lost,
# duplicated or failed.
# Usage: bench/spike.sh [TASKS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
tasks=${1:-100000}
clients=${2:-8}
work=$(mktemp -d /tmp/agent_loop_spike.XXXXXX); chmod 755 "$work"
trap 'touch "$work/submit.done"; cluster_stop "$work"; kill "${MODEL_PID:-}" 2>/dev/null; rm -rf "$work"' EXIT
model_server_start "$work"
cluster_start "$work" "shared_buffers = 256MB" "max_wal_size = 4GB" "agent_loop.max_in_flight = 64" \
    "log_min_messages = warning" ${SPIKE_CONF:+"$SPIKE_CONF"}
as_postgres "$PG_BIN/createdb" -h "$PGHOST" -p "$PGPORT" spike
q() { psql -X -qAt -d spike -v ON_ERROR_STOP=1 "$@"; }
q -v url="http://127.0.0.1:$MODEL_PORT/v1" <<'SQL'
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('echo', :'url', 'echo', max_concurrency => 64) \g /dev/null
SQL

per_client=$((tasks / clients))
tasks=$((per_client * clients))
echo "agent_loop spike: $tasks tasks from $clients sessions, $(nproc) cores, one worker, instant model"
cat >"$work/submit.sql" <<'SQL'
SELECT agent_loop.submit('spike ' || :client_id || '-' || random(), model => 'echo');
SQL
chmod 644 "$work/submit.sql"

# Lock waits among the submitting sessions, sampled while they run.
(
    waits=0 samples=0
    while [ ! -f "$work/submit.done" ]; do
        n=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'spike'" 2>/dev/null || echo 0)
        waits=$((waits + n)) samples=$((samples + 1))
        sleep 0.05
    done
    echo "$waits $samples" >"$work/lockwaits"
) &
sampler=$!
t0=$(date +%s.%N)
(cd "$work" && as_postgres "$PG_BIN/pgbench" -n -f submit.sql -c "$clients" -j 2 -t "$per_client" \
    -l --log-prefix=submit spike >pgbench.out 2>&1) || { cat "$work/pgbench.out"; exit 1; }
t_submitted=$(date +%s.%N)
touch "$work/submit.done"; wait "$sampler"
read -r waits samples <"$work/lockwaits"
done_at_submit_end=$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE status = 'succeeded'")
# pgbench -l: one line per transaction, latency in microseconds in the third column.
cat "$work"/submit.* | awk '{print $3}' | sort -n >"$work/latencies"
pct() { awk -v p="$1" '{a[NR] = $1} END {i = int(NR * p); if (i < 1) i = 1; printf "%.2f", a[i] / 1000}' "$work/latencies"; }
printf 'submit: %.0f tasks/s; latency p50 %s ms, p99 %s ms, max %s ms; the worker finished %s tasks meanwhile\n' \
    "$(echo "$tasks / ($t_submitted - $t0)" | bc -l)" "$(pct 0.5)" "$(pct 0.99)" "$(pct 1.0)" "$done_at_submit_end"
echo "lock waits seen in $waits of $samples samples of the submitting sessions"

# Drain, sampling progress and dead tuples.
last_print=0
while :; do
    line=$(q -c "SELECT count(*) FILTER (WHERE status IN ('queued', 'running')),
                        (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'agent_loop.tasks'::regclass),
                        (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'agent_loop.tasks'::regclass),
                        (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'agent_loop.tasks'::regclass)
                   FROM agent_loop.tasks")
    IFS='|' read -r left dead live autovacuums <<<"$line"
    now=$(date +%s)
    if [ $((now - last_print)) -ge 10 ] || [ "$left" = 0 ]; then
        printf '  t=%4.0fs  left %6s  tasks: dead tuples %6s (live %6s, autovacuums %s)\n' \
            "$(echo "$(date +%s.%N) - $t0" | bc -l)" "$left" "$dead" "$live" "$autovacuums"
        last_print=$now
    fi
    [ "$left" = 0 ] && break
    sleep 1
done
t_drained=$(date +%s.%N)
printf 'drained: %.0f s after the first submit, %.0f tasks/s overall\n' \
    "$(echo "$t_drained - $t0" | bc -l)" "$(echo "$tasks / ($t_drained - $t0)" | bc -l)"

problems=$(q <<SQL
WITH r AS (SELECT task_id, count(*) AS n FROM agent_loop.reflections GROUP BY task_id)
SELECT concat_ws(E'\n',
  (SELECT 'tasks: ' || count(*) || ', not $tasks' FROM agent_loop.tasks HAVING count(*) <> $tasks),
  (SELECT 'not succeeded: ' || count(*) FROM agent_loop.tasks WHERE status <> 'succeeded' HAVING count(*) > 0),
  (SELECT 'ran more than once: ' || count(*) FROM r WHERE n > 1 HAVING count(*) > 0),
  (SELECT 'claimed more than once: ' || count(*) FROM agent_loop.tasks WHERE attempts <> 1 HAVING count(*) > 0),
  (SELECT 'steps: ' || count(*) || ', not ' || 3 * $tasks FROM agent_loop.steps
    WHERE kind <> 'error' HAVING count(*) <> 3 * $tasks))
SQL
)
# A model call that failed and was retried leaves an error step; count them, they are not lost work.
q -c "SELECT 'model calls retried: ' || count(*) || coalesce(' (' || string_agg(DISTINCT content->>'class', ', ') || ')', '')
        FROM agent_loop.steps WHERE kind = 'error'"
sizes=$(q -c "SELECT string_agg(format('%s %s', relname, pg_size_pretty(pg_total_relation_size(relid))), ', ' ORDER BY relname)
                FROM pg_stat_user_tables WHERE schemaname = 'agent_loop'")
echo "table sizes: $sizes"
t=$(date +%s.%N)
pruned=$(q -c "SELECT agent_loop.prune('0 seconds')")
printf 'prune: %s tasks and their steps deleted in %.1f s\n' "$pruned" "$(echo "$(date +%s.%N) - $t" | bc -l)"
if [ -n "$problems" ]; then
    echo "spike: FAILED"; echo "$problems"; exit 1
fi
echo "spike: all $tasks tasks ran exactly once"
