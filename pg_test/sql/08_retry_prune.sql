-- retry() re-queues a failed or cancelled task from its last committed step; prune() deletes
-- ended tasks. Both act only on tasks the caller can see.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET ROLE alice;
-- Two steps are not enough for this script; the retry gives the task more.
SELECT agent_loop.submit($$Needs four steps. SCRIPT: [
  {"calls": [{"name": "refund_total", "arguments": {}}]},
  {"calls": [{"name": "refund_total", "arguments": {"since": "2024-03-02"}}]},
  {"calls": [{"name": "refund_total", "arguments": {"since": "2024-03-03"}}]},
  {"answer": "totals: {{tool_results}}"}]$$,
  model => 'scripted', tools => '{refund_total}', max_steps => 2) AS id \gset
SELECT status, error_code, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.retry(:id, max_steps => 5);
SELECT status, result->>'answer' AS answer, steps_done, error_code FROM agent_loop.wait(:id, '30 seconds');
SELECT max_steps, attempts FROM agent_loop.tasks WHERE id = :id;
-- The log keeps the first failure; no step ran twice.
SELECT n, turn, phase, kind FROM agent_loop.trace(:id) WHERE n IS DISTINCT FROM 1;
SELECT error_of(format('SELECT agent_loop.retry(%s)', :id));
SELECT error_of(format('SELECT agent_loop.retry(%s, max_steps => 0)', :id));
RESET ROLE;

-- Bob can neither retry nor prune alice's tasks.
SET ROLE bob;
SELECT error_of(format('SELECT agent_loop.retry(%s)', :id));
SELECT agent_loop.prune('0 seconds') >= 0 AS pruned_his_own;
RESET ROLE;
SELECT count(*) > 0 AS alice_still_has_tasks FROM agent_loop.tasks WHERE owner = 'alice'::regrole;

-- A cancelled task can be retried too.
SELECT agent_loop.submit($$Scheduled. SCRIPT: [{"answer": "ran after all"}]$$, model => 'scripted',
       run_after => now() + interval '1 hour') AS id \gset
SELECT agent_loop.cancel(:id);
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.retry(:id);
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');

-- prune: alice's ended tasks go, with their steps; her lessons stay.
SET ROLE alice;
SELECT count(*) AS reflections_before FROM agent_loop.reflections \gset
SELECT agent_loop.prune('1 hour') AS none_old_enough;
SELECT agent_loop.prune('0 seconds') > 0 AS pruned;
SELECT count(*) AS tasks_left FROM agent_loop.tasks;
SELECT count(*) AS steps_left FROM agent_loop.steps;
SELECT count(*) = :reflections_before AS lessons_kept FROM agent_loop.reflections;
RESET ROLE;
SELECT count(*) AS alices_tasks FROM agent_loop.tasks WHERE owner = 'alice'::regrole;
SELECT count(*) > 0 AS others_untouched FROM agent_loop.tasks;
