-- Limits end a task with a clear status; cancel stops it before its next step.
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- max_steps: a model that never stops calling tools (each call a new one).
SELECT agent_loop.submit($$Loop forever. SCRIPT: [{"calls": [{"name": "sql_query", "arguments": {"query": "SELECT {{turn}}"}}]}]$$,
       model => 'scripted', tools => '{sql_query}', max_steps => 3) AS id \gset
SELECT status, error_code, error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) FILTER (WHERE kind = 'tool_call') AS calls,
       count(*) FILTER (WHERE kind = 'tool_result') AS results
  FROM agent_loop.steps WHERE task_id = :id;
SELECT n, phase, kind, summary FROM agent_loop.trace(:id) WHERE phase IN ('act', 'reflect') AND kind <> 'tool_result';
-- The same call with the same arguments again: not run; its result is the earlier result once
-- more, saying so; a third time ends the task.
SELECT agent_loop.submit($$Loop on one call. SCRIPT: [{"calls": [{"name": "refund_total", "arguments": {}}]}]$$,
       model => 'scripted', tools => '{refund_total}', max_steps => 5) AS id \gset
SELECT status, error_code, error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, summary FROM agent_loop.trace(:id) WHERE kind IN ('tool_call', 'tool_result', 'error');
-- Told once, a model that answers gets through.
SELECT agent_loop.submit($$Repeat once. SCRIPT: [{"calls": [{"name": "refund_total", "arguments": {}}]},
  {"calls": [{"name": "refund_total", "arguments": {}}]}, {"answer": "tool_choice={{tool_choice}}: {{last_tool_result}}"}]$$,
       model => 'scripted', tools => '{refund_total}') AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');

-- A token budget.
SELECT agent_loop.submit($$Spend. SCRIPT: [{"calls": [{"name": "refund_total", "arguments": {}}]}]$$,
       model => 'scripted', tools => '{refund_total}', max_steps => 50, token_budget => 300) AS id \gset
SELECT status, error_code, steps_done < 50 AS stopped_early FROM agent_loop.wait(:id, '30 seconds');

-- A deadline: the first decide is slow, so no second step starts.
SELECT agent_loop.submit($$Slowly. SCRIPT: [{"delay_ms": 1500, "calls": [{"name": "refund_total", "arguments": {}}]}, {"answer": "too late"}]$$,
       model => 'scripted', tools => '{refund_total}', timeout => '1 second') AS id \gset
SELECT status, error_code, error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');

-- Cancel while the model call is in flight: the task ends cancelled at once, without another step.
SELECT agent_loop.submit($$Take your time. SCRIPT: [{"delay_ms": 4000, "answer": "finished"}]$$,
       model => 'scripted') AS id \gset
SELECT await_running(:id);
SELECT clock_timestamp() AS t0 \gset
SELECT agent_loop.cancel(:id);
SELECT status, error_code, result FROM agent_loop.wait(:id, '30 seconds');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3 seconds' AS before_the_answer;
SELECT n, phase, kind, summary FROM agent_loop.trace(:id) WHERE n IS DISTINCT FROM 1;
-- Cancelling a finished task says so and changes nothing.
SELECT agent_loop.cancel(:id);

-- Cancel a task that has not started (scheduled for later): it never runs. While it waits,
-- its model is neither deleted nor renamed; once it has ended, the model can go.
SELECT agent_loop.add_model('later', :'model_url', 'scripted') IS NOT NULL AS added;
SELECT agent_loop.submit($$Later. SCRIPT: [{"answer": "never"}]$$, model => 'later',
       run_after => now() + interval '1 hour') AS id \gset
SELECT status FROM agent_loop.wait(:id, '1 second');
SELECT error_of($$DELETE FROM agent_loop.models WHERE name = 'later'$$) AS delete_in_use,
       error_of($$UPDATE agent_loop.models SET name = 'sooner' WHERE name = 'later'$$) AS rename_in_use;
SELECT agent_loop.cancel(:id);
SELECT status, error_message FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS steps FROM agent_loop.steps WHERE task_id = :id;
DELETE FROM agent_loop.models WHERE name = 'later' RETURNING name AS deleted;

-- wait() refuses what cannot work.
BEGIN;
SELECT agent_loop.submit($$In a transaction. SCRIPT: [{"answer": "ok"}]$$, model => 'scripted') AS id \gset
SELECT error_of(format('SELECT * FROM agent_loop.wait(%s, %L)', :id, '1 second'));
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM agent_loop.wait(1, '1 second');
ROLLBACK;
-- A rolled-back submit leaves nothing behind.
SELECT count(*) FROM agent_loop.tasks WHERE goal LIKE 'In a transaction%';

-- A model's max_concurrency caps its calls in flight: two 1-second calls on a model capped at
-- one run one after the other.
SELECT agent_loop.add_model('serial', :'model_url', 'scripted', max_concurrency => 1);
SELECT agent_loop.submit($$One. SCRIPT: [{"delay_ms": 1000, "answer": "one"}]$$, model => 'serial') AS a,
       agent_loop.submit($$Two. SCRIPT: [{"delay_ms": 1000, "answer": "two"}]$$, model => 'serial') AS b \gset
SELECT status FROM agent_loop.wait(:a, '30 seconds');
SELECT status FROM agent_loop.wait(:b, '30 seconds');
SELECT abs(extract(epoch FROM (SELECT finished_at FROM agent_loop.tasks WHERE id = :a)
                            - (SELECT finished_at FROM agent_loop.tasks WHERE id = :b))) >= 0.9 AS one_after_the_other;
