-- The simplest loop: perceive, one decide that answers, reflect. Usage is recorded per step.
SELECT agent_loop.submit('What is 6 times 7? SCRIPT: [{"answer": "42"}]', model => 'scripted') AS id \gset
SELECT status, result, error_code, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, phase, kind, summary FROM agent_loop.trace(:id);
SELECT status, phase, steps, tokens > 0 AS has_tokens, error_code FROM agent_loop.tasks_overview WHERE id = :id;
SELECT input_tokens > 0 AS input, output_tokens > 0 AS output, latency_ms >= 0 AS latency
  FROM agent_loop.steps WHERE task_id = :id AND kind = 'message' AND phase = 'decide';
SELECT t.input_tokens = s.input_tokens AS totals_match
  FROM agent_loop.tasks t, (SELECT sum(input_tokens) AS input_tokens FROM agent_loop.steps WHERE task_id = :id) s
 WHERE t.id = :id;
-- The worker is visible and has done work.
SELECT database, in_flight >= 0 AS ok, tasks_claimed >= 1 AS claimed FROM agent_loop.workers;
-- An answer arrives without the client polling: wait() returns as soon as the task ends.
SELECT agent_loop.submit('Quick. SCRIPT: [{"answer": "done"}]', model => 'scripted') AS id \gset
SELECT clock_timestamp() AS t0 \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '2 seconds' AS returned_promptly;
-- The same idempotency key returns the same task.
SELECT agent_loop.submit('Once. SCRIPT: [{"answer": "once"}]', model => 'scripted', idempotency_key => 'k1') AS first \gset
SELECT agent_loop.submit('Once. SCRIPT: [{"answer": "once"}]', model => 'scripted', idempotency_key => 'k1') = :first AS same_task;
SELECT count(*) FROM agent_loop.tasks WHERE idempotency_key = 'k1';
-- A default model can be set per session.
SET agent_loop.default_model = 'scripted';
SELECT agent_loop.submit('Default. SCRIPT: [{"answer": "used the default"}]') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
RESET agent_loop.default_model;
