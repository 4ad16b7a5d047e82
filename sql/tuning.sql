-- Tuning advice: the server's settings against what agent_loop's workload needs, and why.

-- Read at every step: the task rows and their indexes, the step log's and the lessons' indexes
-- (the log itself is appended to, and read back only to resume a task). The worker prewarms
-- them at start; tuning_advice() sizes shared_buffers by them.
CREATE FUNCTION _hot_relations() RETURNS SETOF regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'agent_loop.tasks'::regclass
    UNION ALL
    SELECT indexrelid::regclass FROM pg_index
     WHERE indrelid IN ('agent_loop.tasks'::regclass, 'agent_loop.steps'::regclass,
                        'agent_loop.reflections'::regclass)
$$;
COMMENT ON FUNCTION _hot_relations IS
    'Internal: the relations every step touches, which the worker prewarms and '
    'tuning_advice() sizes shared_buffers by.';

CREATE FUNCTION tuning_advice()
RETURNS TABLE (setting text, current text, advice text, why text)
LANGUAGE sql STABLE
-- Reading shared_preload_libraries and the WAL settings needs pg_read_all_settings; the
-- function only reads, takes no input, and its search_path is fixed.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH hot AS (
    SELECT coalesce(sum(pg_relation_size(rel)), 0) AS bytes FROM agent_loop._hot_relations() rel
),
checkpoints AS (SELECT checkpoints_timed AS timed, checkpoints_req AS requested FROM pg_stat_bgwriter),
-- The queue table's own setting, or the server's when it has none.
tasks_vacuum AS (
    SELECT coalesce((SELECT split_part(o, '=', 2) FROM pg_class c, unnest(c.reloptions) o
                      WHERE c.oid = 'agent_loop.tasks'::regclass
                        AND o LIKE 'autovacuum_vacuum_scale_factor=%'),
                    current_setting('autovacuum_vacuum_scale_factor')) AS scale_factor
),
capacity AS (SELECT coalesce(sum(max_concurrency), 0) AS model_slots FROM agent_loop.models)
SELECT 'shared_preload_libraries', current_setting('shared_preload_libraries'),
       CASE WHEN current_setting('shared_preload_libraries') ~ '(^|[ ,])agent_loop($|[ ,])' THEN 'ok'
            ELSE 'add agent_loop, then restart' END,
       'Workers are started by the launcher, which exists only when the library is preloaded.'
UNION ALL
SELECT 'max_worker_processes', current_setting('max_worker_processes'),
       CASE WHEN current_setting('max_worker_processes')::int >= slots.needed THEN 'ok'
            ELSE 'at least ' || slots.needed END,
       'One slot for the launcher and, per database with agent_loop, one per worker and one per '
       || 'executor of each (' || slots.per_database || ' here), besides the parallel query '
       || 'workers (max_parallel_workers) that share the same pool.'
  FROM (SELECT per_database,
               1 + per_database + current_setting('max_parallel_workers')::int AS needed
          FROM (SELECT current_setting('agent_loop.workers_per_database')::int
                       * (1 + current_setting('agent_loop.executors_per_worker')::int) AS per_database) d
       ) slots
UNION ALL
SELECT 'synchronous_commit', current_setting('synchronous_commit'),
       CASE WHEN current_setting('synchronous_commit') = 'off'
            THEN 'on; set agent_loop.step_commit = async instead' ELSE 'ok' END,
       'Off server-wide, a crash can lose tasks that had finished. agent_loop.step_commit = async '
       || 'relaxes only the intermediate steps (redone after a crash) and keeps every final '
       || 'transition durable.'
UNION ALL
SELECT 'shared_buffers', current_setting('shared_buffers'),
       CASE WHEN pg_size_bytes(current_setting('shared_buffers')) >= 2 * hot.bytes THEN 'ok'
            ELSE 'at least ' || pg_size_pretty(2 * hot.bytes) END,
       'The task rows and the indexes of tasks, steps and lessons (' || pg_size_pretty(hot.bytes)
       || ' now) are touched at every step; room for twice that keeps them in memory as they grow.'
  FROM hot
UNION ALL
SELECT 'max_wal_size', current_setting('max_wal_size'),
       CASE WHEN requested > timed AND requested > 0
            THEN 'consider ' || pg_size_pretty(2 * pg_size_bytes(current_setting('max_wal_size')))
            ELSE 'ok' END,
       'More checkpoints were requested than timed (' || requested || ' against ' || timed
       || '): WAL volume forces them (or commands did, such as DROP DATABASE; the server log '
       || 'says which with log_checkpoints). After each, the first change to every page logs '
       || 'the whole page, which multiplies the WAL per step.'
  FROM checkpoints
UNION ALL
SELECT 'wal_compression', current_setting('wal_compression'),
       CASE WHEN current_setting('wal_compression') = 'off' THEN 'consider lz4' ELSE 'ok' END,
       'The full-page images written after a checkpoint are most of the WAL of a busy step log; '
       || 'compressing them costs a little CPU per page.'
UNION ALL
SELECT 'autovacuum', current_setting('autovacuum'),
       CASE WHEN current_setting('autovacuum') = 'on' THEN 'ok' ELSE 'on' END,
       'Every claim and step leaves a dead version of a task row; without vacuum the queue and '
       || 'its indexes grow without bound and claims slow down.'
UNION ALL
SELECT 'autovacuum_naptime', current_setting('autovacuum_naptime'),
       CASE WHEN current_setting('autovacuum_naptime')::interval <= interval '1 minute' THEN 'ok'
            ELSE '1min or less' END,
       'Dead task versions pile up between two visits of autovacuum to the database: about three '
       || 'per task, so 180,000 in a minute at 1,000 tasks/s.'
UNION ALL
SELECT 'agent_loop.tasks (autovacuum_vacuum_scale_factor)', scale_factor,
       CASE WHEN scale_factor::float8 <= 0.05
            THEN 'ok' ELSE 'ALTER TABLE agent_loop.tasks SET (autovacuum_vacuum_scale_factor = 0.02)' END,
       'A queue table: vacuumed after a few percent of its rows changed, not the default 20%.'
  FROM tasks_vacuum
UNION ALL
SELECT 'work_mem', current_setting('work_mem'),
       CASE WHEN pg_size_bytes(current_setting('work_mem')) >= 2 * 1024 * 1024 THEN 'ok'
            ELSE 'at least 2MB' END,
       'Recall ranks up to 1,000 lessons per new task in memory (about 1 MB).'
UNION ALL
SELECT 'agent_loop.max_in_flight', current_setting('agent_loop.max_in_flight'),
       CASE WHEN current_setting('agent_loop.max_in_flight')::int >= model_slots THEN 'ok'
            ELSE 'up to ' || model_slots || ' (the sum of the models'' max_concurrency)' END,
       'A worker holds at most this many tasks at once; models allow ' || model_slots
       || ' calls in flight in all. Each task in flight costs a helper thread (256 kB stack).'
  FROM capacity
UNION ALL
SELECT 'compute_query_id', current_setting('compute_query_id'),
       CASE WHEN current_setting('compute_query_id') IN ('on', 'regress')
              OR current_setting('shared_preload_libraries') ~ 'pg_stat_statements' THEN 'ok'
            ELSE 'consider pg_stat_statements (or compute_query_id = on)' END,
       'agent_loop.tool_activity shows query_id only when it is computed; with '
       || 'pg_stat_statements, a slow tool statement joins its statistics.'
$$;
COMMENT ON FUNCTION tuning_advice IS
    'Compares the server''s settings with what agent_loop''s workload needs: one row per '
    'setting with its current value, ''ok'' or the advice, and why.';
REVOKE ALL ON FUNCTION tuning_advice FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tuning_advice TO agent_loop_admin;
