#!/usr/bin/env bash
# A quick throughput probe, not the full benchmark: a throwaway cluster (fsync on, default
# settings) and the benchmark's model server (bench/model) answering at once. Prints tasks/s
# and steps/s for 1-step tasks (an answer) and 3-step tasks (two tool calls, then an answer),
# the pickup latency (submit commit -> claimed), and WAL bytes per step.
# Usage: bench/quick.sh [TASKS]   (default 2000; WAL_STATS=1 adds pg_waldump's breakdown of each
# run's WAL by record type)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
tasks=${1:-2000}
probe_cluster_start bench "shared_buffers = 256MB" "max_wal_size = 4GB" "agent_loop.max_in_flight = 64" ${BENCH_CONF:+"$BENCH_CONF"}
q() { psql -X -qAt -d bench -v ON_ERROR_STOP=1 "$@"; }

run() {  # run NAME MODEL STEPS_PER_TASK GOAL TOOLS
    local name=$1 model=$2 steps=$3 goal=$4 tools=$5
    local lsn0 t0 t1 lsn1 last wal0
    lsn0=$(q -c "SELECT pg_current_wal_lsn()")
    upd0=$(q -c "SELECT n_tup_upd || ',' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'agent_loop.tasks'::regclass")
    wal0=$(q -c "SELECT wal_records || ',' || wal_write || ',' || wal_sync FROM pg_stat_wal")
    t0=$(date +%s.%N)
    q -c "SELECT count(agent_loop.submit('#' || i || ' ' || \$g\$$goal\$g\$, model => '$model', tools => '$tools'))
            FROM generate_series(1, $tasks) i" >/dev/null
    last=$(q -c "SELECT max(id) FROM agent_loop.tasks")
    q -c "SELECT status FROM agent_loop.wait($last, '600 seconds')" >/dev/null
    while [ "$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE status IN ('queued','running')")" != 0 ]; do sleep 0.05; done
    t1=$(date +%s.%N)
    lsn1=$(q -c "SELECT pg_current_wal_lsn()")
    q -c "SELECT format('%-24s %s tasks  %s tasks/s  %s steps/s  WAL %s B/step  not succeeded: %s',
                  '$name', count(*), round(count(*) / ($t1 - $t0)), round(sum(steps_done) / ($t1 - $t0)),
                  (pg_wal_lsn_diff('$lsn1', '$lsn0') / nullif(sum(steps_done), 0))::int,
                  count(*) FILTER (WHERE status <> 'succeeded'))
            FROM agent_loop.tasks WHERE model = '$model'"
    if [ -n "${WAL_STATS:-}" ]; then   # what the WAL of this run is made of, by record type
        as_postgres "$PG_BIN/pg_waldump" -p "$work/data/pg_wal" -s "$lsn0" -e "$lsn1" --stats=record 2>/dev/null |
            awk 'NR <= 2 || ($2 > 0 && $0 !~ /^-+$/)' | sort -t '(' -k4 -rn | head -n 25
    fi
    # Rows of one transaction share created_at: the model answers committed per step transaction.
    q -c "SELECT format('  %s steps per step transaction (answers committed together)',
                  round(count(*)::numeric / count(DISTINCT s.created_at), 1))
            FROM agent_loop.steps s JOIN agent_loop.tasks t ON t.id = s.task_id
           WHERE t.model = '$model' AND s.phase = 'decide'"  # one decide row per step here
    sleep 2.2   # the worker reports its statistics at most once a second
    q -c "SELECT format('  %s WAL records/step, %s WAL writes/step, %s WAL syncs/step',
                  round((wal_records - split_part('$wal0', ',', 1)::bigint) / s, 1),
                  round((wal_write - split_part('$wal0', ',', 2)::bigint) / s, 2),
                  round((wal_sync - split_part('$wal0', ',', 3)::bigint) / s, 2))
            FROM pg_stat_wal, (SELECT sum(steps_done)::numeric AS s FROM agent_loop.tasks WHERE model = '$model') t"
    # HOT: an update that changes no indexed column (nor one in an index's predicate) and finds
    # room on its page adds no index entries.
    q -c "SELECT format('  task row updates: %s per task, %s%% of them HOT',
                  round((n_tup_upd - split_part('$upd0', ',', 1)::bigint) / $tasks::numeric, 1),
                  round(100.0 * (n_tup_hot_upd - split_part('$upd0', ',', 2)::bigint)
                        / nullif(n_tup_upd - split_part('$upd0', ',', 1)::bigint, 0)))
            FROM pg_stat_user_tables WHERE relid = 'agent_loop.tasks'::regclass"
}
echo "agent_loop quick probe: $tasks tasks per run, $(nproc) cores, $(q -c 'SHOW agent_loop.workers_per_database') worker(s), instant model"
run "1 step (answer)" echo 1 "probe" "{}"
run "3 steps (2 tool calls)" scripted 3 'Probe. SCRIPT: [{"calls": [{"name": "noop", "arguments": {"x": 1}}]}, {"calls": [{"name": "noop", "arguments": {"x": 2}}]}, {"answer": "done"}]' "{noop}"

# Pickup latency: one task at a time into an idle worker, submit commit -> claimed.
for i in $(seq 1 50); do
    id=$(q -c "SELECT agent_loop.submit('pickup $i', model => 'echo')")
    q -c "SELECT status FROM agent_loop.wait($id, '10 seconds')" >/dev/null
    sleep 0.02
done
q -c "SELECT format('pickup latency (submit -> claimed): p50 %s ms, p99 %s ms, max %s ms over %s tasks',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(max(ms)::numeric, 2), count(*))
        FROM (SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms
                FROM agent_loop.tasks WHERE goal LIKE 'pickup %') p"
