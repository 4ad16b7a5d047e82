-- Warm start: a worker that starts loads its tables and indexes into shared buffers first,
-- when pg_prewarm is installed in the database.
\set VERBOSITY terse
-- This database's worker started without pg_prewarm: nothing was prewarmed.
SELECT prewarmed_blocks FROM agent_loop.workers WHERE database = current_database();
CREATE EXTENSION pg_prewarm;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE backend_type = 'agent_loop worker' AND datname = current_database();
SELECT pg_sleep(0.3);
-- A submit starts a new worker, which prewarms before it claims.
SELECT agent_loop.submit($$Warm. SCRIPT: [{"answer": "warm"}]$$, model => 'scripted') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT prewarmed_blocks > 0 AS prewarmed,
       prewarmed_blocks <= (SELECT sum(pg_relation_size(c.oid)) / current_setting('block_size')::int
                              FROM pg_class c
                             WHERE c.oid = 'agent_loop.tasks'::regclass
                                OR c.oid IN (SELECT indexrelid FROM pg_index
                                              WHERE indrelid IN ('agent_loop.tasks'::regclass,
                                                                 'agent_loop.steps'::regclass,
                                                                 'agent_loop.reflections'::regclass)))
           AS only_the_hot_relations
  FROM agent_loop.workers WHERE database = current_database();
DROP EXTENSION pg_prewarm;
