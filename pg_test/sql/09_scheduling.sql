-- Scheduling: priority orders the claims, run_after holds a task back, and with
-- agent_loop.retention the worker deletes tasks that ended long enough ago.
\set VERBOSITY terse
-- One task per claim, so the order of started_at is the order of claims.
ALTER SYSTEM SET agent_loop.claim_batch = 1;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
-- Submitted together (the worker wakes at commit); the highest priority is scheduled later.
BEGIN;
SELECT count(agent_loop.submit(format($$Priority %s. SCRIPT: [{"answer": "p%s"}]$$, p, p),
                               model => 'scripted', priority => p)) AS submitted
  FROM unnest(ARRAY[3, -1, 7, 0, 5]) p;
SELECT agent_loop.submit($$Priority 100, later. SCRIPT: [{"answer": "late"}]$$, model => 'scripted',
       priority => 100, run_after => now() + interval '1.5 seconds') AS later \gset
COMMIT;
SELECT count(*) FILTER (WHERE w.status = 'succeeded') AS succeeded
  FROM agent_loop.tasks t, agent_loop.wait(t.id, '30 seconds') w WHERE t.goal LIKE 'Priority %';
SELECT priority, rank() OVER (ORDER BY started_at) AS claimed, started_at >= run_after AS not_before_run_after
  FROM agent_loop.tasks WHERE goal LIKE 'Priority %' ORDER BY priority DESC;
ALTER SYSTEM RESET agent_loop.claim_batch;

-- Retention: tasks that ended more than a second ago go, with their steps; queued ones stay.
SELECT agent_loop.submit($$Far ahead. SCRIPT: [{"answer": "x"}]$$, model => 'scripted',
       run_after => now() + interval '1 day') AS queued \gset
SELECT count(*) > 0 AS some_ended FROM agent_loop.tasks WHERE status IN ('succeeded', 'failed', 'cancelled');
ALTER SYSTEM SET agent_loop.retention = '1s';
SELECT pg_reload_conf();
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM agent_loop.tasks WHERE status IN ('succeeded', 'failed', 'cancelled'));
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT count(*) AS ended_left FROM agent_loop.tasks WHERE status IN ('succeeded', 'failed', 'cancelled');
SELECT count(*) AS orphan_steps FROM agent_loop.steps s
 WHERE NOT EXISTS (SELECT FROM agent_loop.tasks t WHERE t.id = s.task_id);
SELECT status FROM agent_loop.tasks WHERE id = :queued;
SELECT count(*) > 0 AS lessons_kept FROM agent_loop.reflections;
ALTER SYSTEM RESET agent_loop.retention;
SELECT pg_reload_conf();
SELECT agent_loop.cancel(:queued);

-- Wake-ups that find no work write nothing: no transaction ID, so no commit record and no WAL
-- flush to wait for. A hundred wake-ups in a second; each would take one.
SELECT pg_sleep(0.5);
SELECT age(datfrozenxid) AS xids_before FROM pg_database WHERE datname = current_database() \gset
ALTER SYSTEM SET agent_loop.poll_interval = '10ms';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
ALTER SYSTEM RESET agent_loop.poll_interval;
SELECT pg_reload_conf();
-- (A few might be autovacuum's.)
SELECT age(datfrozenxid) - :xids_before < 10 AS idle_worker_took_no_xids
  FROM pg_database WHERE datname = current_database();
-- Nor does wait() in the caller's transaction.
BEGIN;
SELECT status FROM agent_loop.wait(:queued, '1 second');
SELECT pg_current_xact_id_if_assigned() IS NULL AS wait_took_no_xid;
COMMIT;
