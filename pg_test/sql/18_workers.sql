-- Several workers per database: agent_loop.workers_per_database = 2 starts a second worker at
-- the next submit; both claim from the same queue (SKIP LOCKED, no task twice); lowering the
-- setting makes the newer one hand its tasks back and exit.
CREATE FUNCTION await_workers(wanted int) RETURNS boolean LANGUAGE sql AS $$
    SELECT await_true(format('(SELECT count(*) FROM agent_loop.workers
                                WHERE database = current_database()) = %s', wanted)) $$;
ALTER SYSTEM SET agent_loop.workers_per_database = 2;
ALTER SYSTEM SET agent_loop.claim_batch = 4;   -- many small claims: both workers get a share
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SHOW agent_loop.workers_per_database;
SELECT agent_loop.submit('Wake up. SCRIPT: [{"answer": "up"}]', model => 'scripted') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT await_workers(2) AS two_workers;
-- 48 tasks that each take a while: both workers claim some, each task runs once.
SELECT count(agent_loop.submit(format('Share %s. SCRIPT: [{"delay_ms": 300, "answer": "done %s"}]', i, i),
                               model => 'scripted'))
  FROM generate_series(1, 48) i;
SELECT count(*) FILTER (WHERE w.status = 'succeeded') AS succeeded, max(w.steps_done) AS most_steps
  FROM agent_loop.tasks t, agent_loop.wait(t.id, '30 seconds') w WHERE t.goal LIKE 'Share %';
SELECT count(*) AS workers, min(tasks_claimed) > 0 AS each_claimed
  FROM agent_loop.workers WHERE database = current_database();
SELECT sum(attempts) AS claims FROM agent_loop.tasks WHERE goal LIKE 'Share %';
ALTER SYSTEM RESET agent_loop.workers_per_database;
ALTER SYSTEM RESET agent_loop.claim_batch;
SELECT pg_reload_conf();
SELECT await_workers(1) AS back_to_one;
SELECT agent_loop.submit('Still served. SCRIPT: [{"answer": "yes"}]', model => 'scripted') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
