-- A DBA sees which task, step and tool runs a statement, while it runs.
\set VERBOSITY terse
SELECT agent_loop.submit($$Nap. SCRIPT: [{"calls": [{"name": "nap", "arguments": {"seconds": 2}}]}, {"answer": "rested"}]$$,
       model => 'scripted', tools => '{nap}') AS id \gset
-- Waits until the call shows (10 s at most).
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN EXISTS (SELECT FROM agent_loop.tool_activity);
        PERFORM pg_sleep(0.05);
        PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is read once per transaction
    END LOOP;
END $$;
SELECT task_id = :id AS this_task, step, tool, owner, database = current_database() AS here,
       wait_event, running_for < interval '2 seconds' AS since_it_began,
       query LIKE format('/* agent_loop task=%s step=1 tool=nap */ SELECT %%', :id) AS commented
  FROM agent_loop.tool_activity;
-- application_name, which every role sees, names no task or tool; the statement's comment,
-- which only superusers and pg_read_all_stats see, does.
SELECT application_name FROM pg_stat_activity WHERE backend_type = 'agent_loop worker';
-- Another role sees only its own tasks' calls.
SET ROLE alice;
SELECT count(*) AS alice_sees FROM agent_loop.tool_activity;
RESET ROLE;
SELECT status, result FROM agent_loop.wait(:id, '30 seconds');
-- Between calls the worker is idle again, under its own name.
SELECT count(*) AS running_now FROM agent_loop.tool_activity;
SELECT application_name, state FROM pg_stat_activity WHERE backend_type = 'agent_loop worker';
