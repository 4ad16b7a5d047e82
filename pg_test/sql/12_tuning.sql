-- tuning_advice(): each setting, ok or what to change, and why.
\set VERBOSITY terse
-- (Not shown: max_in_flight depends on the models earlier files added, max_wal_size on the
-- checkpoints they caused.)
SELECT setting, advice, why <> '' AS explained FROM agent_loop.tuning_advice()
 WHERE setting NOT IN ('agent_loop.max_in_flight', 'max_wal_size');
-- A worker holding fewer tasks than the models could serve at once.
SELECT agent_loop.add_model('wide', 'http://127.0.0.1:9/v1', 'm', max_concurrency => 1000) IS NOT NULL AS added;
SELECT current, advice = format('up to %s (the sum of the models'' max_concurrency)',
                                (SELECT sum(max_concurrency) FROM agent_loop.models)) AS says_the_sum
  FROM agent_loop.tuning_advice() WHERE setting = 'agent_loop.max_in_flight';
DELETE FROM agent_loop.models WHERE name = 'wide';
-- It reads the settings in force, so a session can try a change before making it.
SET synchronous_commit = off;
SET work_mem = '1MB';
SELECT setting, advice FROM agent_loop.tuning_advice()
 WHERE setting IN ('synchronous_commit', 'work_mem');
RESET synchronous_commit;
RESET work_mem;
-- The queue table's own vacuum threshold is checked too.
ALTER TABLE agent_loop.tasks RESET (autovacuum_vacuum_scale_factor);
SELECT current, advice FROM agent_loop.tuning_advice() WHERE setting LIKE 'agent_loop.tasks%';
ALTER TABLE agent_loop.tasks SET (autovacuum_vacuum_scale_factor = 0.02);
SELECT advice FROM agent_loop.tuning_advice() WHERE setting LIKE 'agent_loop.tasks%';
-- For administrators.
SET ROLE alice;
SELECT count(*) FROM agent_loop.tuning_advice();
RESET ROLE;
SET ROLE carol;
SELECT count(*) > 0 AS admin_may FROM agent_loop.tuning_advice();
RESET ROLE;
