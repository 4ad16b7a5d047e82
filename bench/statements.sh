#!/usr/bin/env bash
# Where the worker's SQL time goes: a throwaway cluster with pg_stat_statements (track = all,
# track_planning = on) drains TASKS 3-step tasks against the instant scripted model, then
# prints each statement seen more than 100 times with its plans, calls, planning and execution
# time. A statement planned at every call is a plan-cache miss worth fixing.
# Usage: bench/statements.sh [TASKS]   (default 2000; the extension must be installed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
tasks=${1:-2000}
probe_cluster_start statements "shared_buffers = 256MB" \
    "shared_preload_libraries = 'agent_loop,pg_stat_statements'" \
    "pg_stat_statements.track = all" "pg_stat_statements.track_planning = on"
q() { psql -X -qAt -d bench -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
q -c "SELECT count(agent_loop.submit('#' || i || \$g\$ Probe. SCRIPT: [{\"calls\": [{\"name\": \"noop\", \"arguments\": {\"x\": 1}}]}, {\"calls\": [{\"name\": \"noop\", \"arguments\": {\"x\": 2}}]}, {\"answer\": \"done\"}]\$g\$,
                                    model => 'scripted', tools => '{noop}'))
        FROM generate_series(1, $tasks) i" >/dev/null
last=$(q -c "SELECT max(id) FROM agent_loop.tasks")
q -c "SELECT status FROM agent_loop.wait($last, '600 seconds')" >/dev/null
while [ "$(q -c "SELECT count(*) FROM agent_loop.tasks WHERE status IN ('queued','running')")" != 0 ]; do sleep 0.05; done
echo "$tasks 3-step tasks: statements run more than 100 times, by total time"
psql -X -d bench -c "
SELECT plans, calls, round(total_plan_time::numeric / calls * 1000) AS plan_us_per_call,
       round(total_exec_time::numeric / calls * 1000) AS exec_us_per_call,
       left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS statement
  FROM pg_stat_statements WHERE calls > 100
 ORDER BY total_plan_time + total_exec_time DESC LIMIT 25"
