-- Steps whose model answers arrive together commit in one transaction: one WAL flush for the
-- group, each step in a subtransaction of its own, so a step that fails rolls back alone. To
-- make answers arrive together, two tasks nap for a second in a tool, one in each of the
-- worker's two executors, while the answers of twelve others (300 ms each) come back: they
-- wait for an executor and go together. The rows a transaction writes share created_at (now()
-- is the time it started).
\set VERBOSITY terse
SELECT agent_loop.submit($$Napper. SCRIPT: [{"calls": [{"name": "nap", "arguments": {"seconds": 1}}]},
                                           {"answer": "rested"}]$$,
                         model => 'scripted', tools => '{nap}',
                         run_after => now() + interval '1 hour') AS napper \gset
SELECT agent_loop.submit($$Napper too. SCRIPT: [{"delay_ms": 100, "calls": [{"name": "nap", "arguments": {"seconds": 1}}]},
                                               {"answer": "rested too"}]$$,
                         model => 'scripted', tools => '{nap}',
                         run_after => now() + interval '1 hour') AS napper_too \gset
SELECT count(agent_loop.submit(format('Together %s. SCRIPT: [{"delay_ms": 300, "answer": "done %s"}]', i, i),
                               model => 'scripted', run_after => now() + interval '1 hour'))
  FROM generate_series(1, 12) i;
-- One of the twelve fails in its step (an injected error as it finishes).
SELECT min(id) AS failing FROM agent_loop.tasks WHERE goal LIKE 'Together %' \gset
SELECT format('finishing:error:%s', :failing) AS plan \gset
ALTER SYSTEM SET agent_loop.fault_injection = :'plan';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
-- All fourteen become due in one claim (and submit wakes the worker).
BEGIN;
UPDATE agent_loop.tasks SET run_after = now() WHERE id IN (:napper, :napper_too) OR goal LIKE 'Together %';
SELECT agent_loop.submit('Wake. SCRIPT: [{"answer": "awake"}]', model => 'scripted') IS NOT NULL AS woken;
COMMIT;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:napper, '30 seconds');
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:napper_too, '30 seconds');
SELECT t.id = :failing AS failing, w.status, w.error_code, count(*)
  FROM agent_loop.tasks t, agent_loop.wait(t.id, '30 seconds') w
 WHERE t.goal LIKE 'Together %' GROUP BY 1, 2, 3 ORDER BY 1;
-- The eleven answers: one transaction. The failed step left no answer, only its error.
SELECT count(*) AS answers, count(DISTINCT s.created_at) AS transactions
  FROM agent_loop.tasks t JOIN agent_loop.steps s ON s.task_id = t.id AND s.phase = 'decide'
 WHERE t.goal LIKE 'Together %';
SELECT phase, kind, regexp_replace(summary, 'task \d+', 'task N') AS summary
  FROM agent_loop.trace(:failing) WHERE n > 1;
-- Each task's step is its own all the same: its answer, in its own log, and its own lesson.
SELECT count(*) FILTER (WHERE t.result->>'answer' = 'done ' || split_part(split_part(t.goal, ' ', 2), '.', 1))
           AS own_answers,
       count(DISTINCT r.task_id) AS lessons
  FROM agent_loop.tasks t JOIN agent_loop.reflections r ON r.task_id = t.id
 WHERE t.goal LIKE 'Together %';
ALTER SYSTEM RESET agent_loop.fault_injection;
SELECT pg_reload_conf();

-- A tenant's statement that locks several of its tasks' rows, in another order than the group
-- that steps them, does not deadlock with the group: once the group holds a task's row it
-- waits for no other (that step is tried again later), so the statement only waits for the
-- group's commit. Again two nappers hold both executors while six of alice's answers come in
-- (oldest first) and go together; each of those steps naps 0.4 s with its row locked. While
-- the group is at its second step, alice cancels the six newest first: she locks the four it
-- has not reached, then waits for the second, which the group holds until it commits.
SELECT agent_loop.submit($$Napper. SCRIPT: [{"calls": [{"name": "nap", "arguments": {"seconds": 1}}]},
                                           {"answer": "rested"}]$$,
                         model => 'scripted', tools => '{nap}',
                         run_after => now() + interval '1 hour') AS napper \gset
SELECT agent_loop.submit($$Napper too. SCRIPT: [{"delay_ms": 100, "calls": [{"name": "nap", "arguments": {"seconds": 1}}]},
                                               {"answer": "rested too"}]$$,
                         model => 'scripted', tools => '{nap}',
                         run_after => now() + interval '1 hour') AS napper_too \gset
SET ROLE alice;
SELECT count(agent_loop.submit(
           format('Locker %s. SCRIPT: [{"delay_ms": %s, "calls": [{"name": "nap", "arguments": {"seconds": 0.4}}]}, {"answer": "not cancelled"}]',
                  i, 300 + 20 * i),
           model => 'scripted', tools => '{nap}', run_after => now() + interval '1 hour'))
  FROM generate_series(1, 6) i;
RESET ROLE;
BEGIN;
UPDATE agent_loop.tasks SET run_after = now() WHERE id IN (:napper, :napper_too) OR goal LIKE 'Locker %';
SELECT agent_loop.submit('Wake. SCRIPT: [{"answer": "awake"}]', model => 'scripted') IS NOT NULL AS woken;
COMMIT;
SELECT await_true($$(SELECT steps_done >= 1 FROM agent_loop.tasks WHERE id = $$ || :napper || ')') AS napped;
SELECT pg_sleep(0.6);
SET ROLE alice;
SELECT clock_timestamp() AS cancel_began \gset
SELECT count(*) FILTER (WHERE requested) AS cancel_requested
  FROM (SELECT agent_loop.cancel(id) AS requested
          FROM (SELECT id FROM agent_loop.tasks WHERE goal LIKE 'Locker %' ORDER BY id DESC) newest_first) c;
-- Waiting a second for each of her rows, the group held her this long, or she was aborted.
SELECT clock_timestamp() - :'cancel_began' < interval '2 seconds' AS held_only_for_a_step;
RESET ROLE;
SELECT w.status, count(*)
  FROM agent_loop.tasks t, agent_loop.wait(t.id, '30 seconds') w
 WHERE t.goal LIKE 'Locker %' GROUP BY 1;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:napper, '30 seconds');
