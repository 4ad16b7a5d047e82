-- A PostgreSQL error or a Rust panic inside a step (injected with agent_loop.fault_injection)
-- rolls the step back, effects included, and fails the task with internal_error and a step row
-- saying why. The worker goes on with other tasks; retry() resumes the task from its last
-- committed step.
\set VERBOSITY terse
\set SHOW_CONTEXT never
CREATE FUNCTION two_notes(tag text) RETURNS text LANGUAGE sql AS $$
  SELECT format($s$%s. SCRIPT: [
    {"calls": [{"name": "add_note", "arguments": {"body": "%s one"}}]},
    {"calls": [{"name": "add_note", "arguments": {"body": "%s two"}}]},
    {"answer": "two notes"}]$s$, tag, tag, tag) $$;
-- Held back until the faults are armed.
CREATE FUNCTION held_two_notes(tag text) RETURNS bigint LANGUAGE sql AS $$
  SELECT agent_loop.submit(two_notes(tag), model => 'scripted', tools => '{add_note}',
                           run_after => now() + interval '1 hour') $$;
SELECT held_two_notes('err') AS err,
       held_two_notes('panic') AS panic,
       held_two_notes('fin') AS fin \gset
SELECT format('acted:error:%s, acted:panic:%s, finishing:error:%s', :err, :panic, :fin) AS plan \gset
ALTER SYSTEM SET agent_loop.fault_injection = :'plan';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
BEGIN;
UPDATE agent_loop.tasks SET run_after = now() WHERE id IN (:err, :panic, :fin);
SELECT agent_loop.submit(two_notes('bystander'), model => 'scripted', tools => '{add_note}') AS bystander \gset
COMMIT;
SELECT t.id = :err AS err, w.status, w.error_code, regexp_replace(w.error_message, 'task \d+', 'task N') AS error_message
  FROM (VALUES (:err), (:panic), (:fin), (:bystander)) t(id), agent_loop.wait(t.id, '30 seconds') w;
-- The failing step left no effect and no record of its tool calls; the error is in the log.
SELECT body, count(*) FROM notes WHERE body ~ '^(err|panic|fin|bystander) ' GROUP BY body ORDER BY body;
SELECT n, phase, kind, regexp_replace(summary, 'task \d+', 'task N') AS summary FROM agent_loop.trace(:err) WHERE n IS DISTINCT FROM 1;
SELECT n, phase, kind FROM agent_loop.trace(:fin);
-- Retried, the tasks resume where they stopped (their second claim passes the fault).
SELECT agent_loop.retry(:err), agent_loop.retry(:panic), agent_loop.retry(:fin);
SELECT w.status, w.result->>'answer' AS answer
  FROM (VALUES (:err), (:panic), (:fin)) t(id), agent_loop.wait(t.id, '30 seconds') w;
SELECT body, count(*) FROM notes WHERE body ~ '^(err|panic|fin) ' GROUP BY body ORDER BY body;
SELECT n, phase, kind FROM agent_loop.trace(:fin) WHERE n IS DISTINCT FROM 1;
-- A plan the worker cannot read is refused as a whole (with a warning in the server log) and
-- injects nothing, not even its valid entries.
SELECT held_two_notes('bad plan') AS id \gset
SELECT format('acted:error:%s, decided:error:%s', :id, :id) AS plan \gset
ALTER SYSTEM SET agent_loop.fault_injection = :'plan';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
UPDATE agent_loop.tasks SET run_after = now() WHERE id = :id;
SELECT status FROM agent_loop.wait(:id, '30 seconds');
ALTER SYSTEM RESET agent_loop.fault_injection;
SELECT pg_reload_conf();
-- An error (or a panic) while a claimed task is prepared rolls its whole claim back. The task
-- fails alone, counting the attempt; the tasks claimed with it start at once, not blocked
-- behind it. Retried, it is prepared again and runs.
SELECT held_two_notes('prep err') AS prep_err,
       held_two_notes('prep panic') AS prep_panic,
       held_two_notes('prep bystander') AS prep_bystander \gset
SELECT format('preparing:error:%s, preparing:panic:%s', :prep_err, :prep_panic) AS plan \gset
ALTER SYSTEM SET agent_loop.fault_injection = :'plan';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
BEGIN;
UPDATE agent_loop.tasks SET run_after = now() WHERE id IN (:prep_err, :prep_panic, :prep_bystander);
SELECT agent_loop.submit('Wake. SCRIPT: [{"answer": "awake"}]', model => 'scripted') IS NOT NULL AS woken;
COMMIT;
SELECT t.id = :prep_bystander AS bystander, w.status, w.error_code,
       regexp_replace(w.error_message, 'task \d+', 'task N') AS error_message
  FROM (VALUES (:prep_err), (:prep_panic), (:prep_bystander)) t(id), agent_loop.wait(t.id, '30 seconds') w
 ORDER BY t.id;
SELECT attempts, (SELECT count(*) FROM agent_loop.steps s WHERE s.task_id = t.id) AS steps
  FROM agent_loop.tasks t WHERE id IN (:prep_err, :prep_panic) ORDER BY id;
SELECT agent_loop.retry(:prep_err), agent_loop.retry(:prep_panic);
SELECT w.status, w.result->>'answer' AS answer
  FROM (VALUES (:prep_err), (:prep_panic)) t(id), agent_loop.wait(t.id, '30 seconds') w;
SELECT body, count(*) FROM notes WHERE body ~ '^prep ' GROUP BY body ORDER BY body;
ALTER SYSTEM RESET agent_loop.fault_injection;
SELECT pg_reload_conf();
-- An error or a panic while a claim recalls its fresh tasks' lessons together rolls back only
-- that recall: each task recalls alone, and the claim goes on (one attempt, lessons found).
SELECT held_two_notes('recall err') AS recall_err, held_two_notes('recall panic') AS recall_panic \gset
SELECT format('recalling:error:%s, recalling:panic:%s', :recall_err, :recall_panic) AS plan \gset
ALTER SYSTEM SET agent_loop.fault_injection = :'plan';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
UPDATE agent_loop.tasks SET run_after = now() WHERE id = :recall_err;
SELECT status FROM agent_loop.wait(:recall_err, '30 seconds');
UPDATE agent_loop.tasks SET run_after = now() WHERE id = :recall_panic;
SELECT status FROM agent_loop.wait(:recall_panic, '30 seconds');
SELECT t.attempts, jsonb_array_length(s.content->'lessons') > 0 AS recalled
  FROM agent_loop.tasks t JOIN agent_loop.steps s ON s.task_id = t.id AND s.n = 1
 WHERE t.id IN (:recall_err, :recall_panic) ORDER BY t.id;
ALTER SYSTEM RESET agent_loop.fault_injection;
SELECT pg_reload_conf();
