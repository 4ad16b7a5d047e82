-- The worker: stopped mid-task it hands the task back, which resumes from its last committed
-- step; it follows DROP EXTENSION, and never blocks DROP DATABASE ... WITH (FORCE).
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT agent_loop.submit($$Survive a restart. SCRIPT: [
  {"calls": [{"name": "add_note", "arguments": {"body": "before the restart"}}]},
  {"delay_ms": 1500, "answer": "finished"}]$$,
  model => 'scripted', tools => '{add_note}') AS id \gset
-- Let the first step commit and the second model call start, then stop the worker.
SELECT await_running(:id, 1);
SELECT lease_worker AS old_worker FROM agent_loop.tasks WHERE id = :id \gset
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'agent_loop worker' AND datname = current_database();
SELECT pg_sleep(0.3);
-- The stopped worker handed the task back (to the queue, or already to a new worker the
-- launcher started), keeping its log; a submit also starts a worker if none runs.
SELECT status IN ('queued', 'running') AS handed_back, lease_worker IS DISTINCT FROM :old_worker AS released
  FROM agent_loop.tasks WHERE id = :id;
SELECT agent_loop.submit($$Wake up. SCRIPT: [{"answer": "awake"}]$$, model => 'scripted') AS other \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT attempts FROM agent_loop.tasks WHERE id = :id;
-- The tool ran once: the resumed task did not repeat its committed step.
SELECT count(*) AS notes FROM notes WHERE body = 'before the restart';
SELECT n, turn, phase, kind FROM agent_loop.trace(:id);
SELECT status FROM agent_loop.wait(:other, '30 seconds');

-- An answer that arrives once the task is no longer this worker's (here its lease was handed
-- to another) ends nothing: the row keeps the new holder's state, and no answer is recorded.
SELECT agent_loop.submit($$Answer late. SCRIPT: [{"delay_ms": 1000, "answer": "too late"}]$$,
       model => 'scripted') AS id \gset
SELECT await_running(:id);
UPDATE agent_loop.tasks SET lease_worker = 0, lease_until = now() + interval '1 hour' WHERE id = :id;
SELECT pg_sleep(1.5);
SELECT status, lease_worker, result FROM agent_loop.tasks WHERE id = :id;
SELECT count(*) AS answers FROM agent_loop.steps WHERE task_id = :id AND content->>'role' = 'assistant';
UPDATE agent_loop.tasks SET status = 'failed', finished_at = now(), lease_worker = NULL,
                            lease_until = NULL WHERE id = :id;

-- Settings reload on SIGHUP (pg_reload_conf), without restarting the worker.
ALTER SYSTEM SET agent_loop.sql_query_row_limit = 2;
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT agent_loop.submit($$Count to ten. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "select g from generate_series(1, 10) g"}}]},
  {"answer": "{{last_tool_result}}"}]$$, model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
ALTER SYSTEM RESET agent_loop.sql_query_row_limit;
SELECT pg_reload_conf();

-- A second database: a worker starts with its first submit and leaves on DROP EXTENSION.
CREATE DATABASE lifecycle;
\c lifecycle
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('scripted', :'model_url', 'scripted');
SELECT agent_loop.submit($$Hello from another database. SCRIPT: [{"answer": "hello"}]$$, model => 'scripted') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT database FROM agent_loop.workers ORDER BY database;
DROP EXTENSION agent_loop;
SELECT pg_sleep(1.5);
SELECT count(*) AS workers_here FROM pg_stat_activity WHERE backend_type = 'agent_loop worker' AND datname = 'lifecycle';
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('scripted', :'model_url', 'scripted');
SELECT agent_loop.submit($$Back again. SCRIPT: [{"answer": "again"}]$$, model => 'scripted') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
\c regression
DROP DATABASE lifecycle WITH (FORCE);
SELECT count(*) AS workers_left FROM pg_stat_activity WHERE backend_type = 'agent_loop worker' AND datname = 'lifecycle';
