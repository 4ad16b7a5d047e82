-- Human approval of tool calls, cost accounting at per-model prices, and forget().
\set SHOW_CONTEXT never
CREATE FUNCTION send_refund(order_id int) RETURNS text
    LANGUAGE sql AS $$ INSERT INTO notes (body) VALUES ('refund ' || order_id)
                       RETURNING 'refund sent for order ' || order_id $$;
SELECT agent_loop.register_tool('send_refund(int)', 'Refund an order', needs_approval => true);
SELECT name, needs_approval FROM agent_loop.tools WHERE name IN ('send_refund', 'refund_total');
SELECT agent_loop.add_model('claude', :'model_url', 'scripted', provider => 'anthropic',
                            input_price => 3, output_price => 15, cached_input_price => 0.3);
SELECT agent_loop.add_model('responses', :'model_url', 'scripted', provider => 'openai_responses');
SELECT statement, error_of(statement) FROM (VALUES
    ($$SELECT agent_loop.add_model('x', 'http://example', 'm', input_price => -1, output_price => 1)$$),
    ($$SELECT agent_loop.add_model('x', 'http://example', 'm', input_price => 1)$$),
    ($$SELECT agent_loop.approve(424242)$$),
    ($$SELECT agent_loop.reject(424242, 'call_0_0', 'no')$$)
) AS bad(statement);

-- A call of a needs_approval tool parks the task: the other call of the step runs, this one
-- waits, visible in pending_approvals; wait() returns, and no worker holds the task.
SET ROLE alice;
SELECT agent_loop.submit($$Refund order 4. SCRIPT: [
  {"calls": [{"name": "refund_total", "arguments": {}},
             {"name": "send_refund", "arguments": {"order_id": 4}}]},
  {"answer": "Done: {{tool_results}}"}]$$,
  model => 'scripted', tools => '{refund_total,send_refund}') AS id \gset
SELECT status, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT phase, lease_worker IS NULL AS no_worker FROM agent_loop.tasks WHERE id = :id;
SELECT task_id = :id AS this_task, call_id, tool, arguments, owner FROM agent_loop.pending_approvals;
SELECT n, kind, summary FROM agent_loop.trace(:id) WHERE n IS DISTINCT FROM 1;
SELECT count(*) AS refunds_sent FROM notes WHERE body = 'refund 4';
RESET ROLE;
-- Only the owner (or an agent_loop_admin) decides; the status is not the user's to set, and
-- the trigger that re-queues cannot be borrowed.
SET ROLE bob;
SELECT error_of(format('SELECT agent_loop.approve(%s)', :id));
SELECT count(*) AS bob_sees FROM agent_loop.pending_approvals;
RESET ROLE;
SET ROLE alice;
SELECT error_of(format($$UPDATE agent_loop.tasks SET status = 'queued' WHERE id = %s$$, :id));
CREATE TEMP TABLE fake (task_id bigint);
SELECT error_of('CREATE TRIGGER f AFTER UPDATE ON fake FOR EACH ROW EXECUTE FUNCTION agent_loop._resume_waiting_task()');
-- Approved: the call runs as alice, and the model gets its result.
SELECT agent_loop.approve(:id) AS approved;
SELECT error_of(format('SELECT agent_loop.approve(%s)', :id));
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT author, body FROM notes WHERE body = 'refund 4';
SELECT n, kind, summary FROM agent_loop.trace(:id) WHERE kind IN ('tool_call', 'tool_result');
SELECT decision, decided_by, decided_at IS NOT NULL AS stamped FROM agent_loop.approvals WHERE task_id = :id;
-- No prices on this model: its steps have no cost, the task costs 0.
SELECT cost FROM agent_loop.tasks_overview WHERE id = :id;
SELECT count(*) FILTER (WHERE cost IS NOT NULL) AS priced_steps FROM agent_loop.steps WHERE task_id = :id;

-- Rejected, on the Anthropic protocol: the call never runs, and the model reads the
-- rejection and its reason as the call's result.
SELECT agent_loop.submit($$Refund order 8. SCRIPT: [
  {"calls": [{"name": "send_refund", "arguments": {"order_id": 8}}], "cached_tokens": 20},
  {"answer": "Told: {{last_tool_result}}", "cached_tokens": 30}]$$,
  model => 'claude', tools => '{send_refund}') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.reject(:id, 'call_0_0', 'order 8 was never paid') AS rejected;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS refunds_sent FROM notes WHERE body = 'refund 8';
-- Prices: each model call's cost is on the row that carries its usage, at input, cached
-- input and output prices per million tokens; the task's cost is their sum.
SELECT count(*) AS priced_steps, sum(cached_tokens) AS cached_tokens,
       bool_and(abs(cost - ((input_tokens - cached_tokens) * 3 + cached_tokens * 0.3
                            + output_tokens * 15) / 1e6) < 1e-12) AS cost_at_prices
  FROM agent_loop.steps WHERE task_id = :id AND input_tokens IS NOT NULL;
SELECT t.cost > 0 AS costs_something,
       t.cost = (SELECT sum(s.cost) FROM agent_loop.steps s WHERE s.task_id = t.id) AS total_is_sum
  FROM agent_loop.tasks t WHERE t.id = :id;

-- Two calls waiting on the Responses protocol: decided one at a time, the task resumes only
-- after the last decision, with each call's outcome.
SELECT agent_loop.submit($$Refund two. SCRIPT: [
  {"calls": [{"name": "send_refund", "arguments": {"order_id": 1}},
             {"name": "send_refund", "arguments": {"order_id": 2}}]},
  {"answer": "{{tool_results}}"}]$$,
  model => 'responses', tools => '{send_refund}') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.approve(:id, 'call_0_0') AS approved;
SELECT status, (SELECT count(*) FROM agent_loop.pending_approvals) AS pending FROM agent_loop.tasks WHERE id = :id;
SELECT agent_loop.reject(:id, 'call_0_1') AS rejected;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT body FROM notes WHERE body IN ('refund 1', 'refund 2');

-- Cancelled while waiting: it ends at once, and its call can no longer be decided.
SELECT agent_loop.submit($$Refund order 12. SCRIPT: [
  {"calls": [{"name": "send_refund", "arguments": {"order_id": 12}}]}]$$,
  model => 'scripted', tools => '{send_refund}') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.cancel(:id);
SELECT status, error_message FROM agent_loop.wait(:id, '30 seconds');
SELECT error_of(format('SELECT agent_loop.approve(%s)', :id));
SELECT count(*) AS pending FROM agent_loop.pending_approvals;
RESET ROLE;

-- forget(): a role's lessons about something leave its memory; other lessons, and other
-- roles' lessons, stay. Forgetting for another role needs agent_loop_admin.
SET ROLE bob;
SELECT agent_loop.submit($$Bob learns. SCRIPT: [{"answer": "ok"}]$$, model => 'scripted') AS bob_task \gset
SELECT status FROM agent_loop.wait(:bob_task, '30 seconds');
RESET ROLE;
SELECT count(*) AS alice_lessons FROM agent_loop.reflections WHERE owner = 'alice'::regrole \gset
SELECT count(*) AS bob_lessons FROM agent_loop.reflections WHERE owner = 'bob'::regrole \gset
SET ROLE alice;
SELECT agent_loop.forget('refund') AS forgotten \gset
SELECT :forgotten > 0 AS forgot_some, count(*) = :alice_lessons - :forgotten AS others_kept,
       count(*) FILTER (WHERE lesson ILIKE '%refund%') AS about_refunds
  FROM agent_loop.reflections WHERE owner = 'alice'::regrole;
SELECT agent_loop.submit($$Refunds again? SCRIPT: [{"answer": "recalled: {{lessons}}"}]$$,
                         model => 'scripted') AS id \gset
SELECT result->>'answer' ILIKE '%refund%' AS recalls_refunds FROM agent_loop.wait(:id, '30 seconds');
SELECT error_of($$SELECT agent_loop.forget(owner => 'bob')$$);
RESET ROLE;
SET ROLE carol;
SELECT :bob_lessons > 0 AS bob_had_lessons, agent_loop.forget(owner => 'bob') = :bob_lessons AS forgot_all_of_bob;
RESET ROLE;
SELECT count(*) AS bob_lessons FROM agent_loop.reflections WHERE owner = 'bob'::regrole;

-- A task's log names the lessons it recalled by their key in reflections. Resumed (here after
-- an approval), it has them in its prompt again, but not one deleted meanwhile; trace() says so.
-- (Recall ranks the two latest lessons only: the two it should find.)
ALTER SYSTEM SET agent_loop.memory_window = 2;
SELECT pg_reload_conf();
SET ROLE alice;
SELECT agent_loop.submit($$Seal census north. SCRIPT: [{"answer": "north counted"}]$$,
                         model => 'scripted') AS north \gset
SELECT status FROM agent_loop.wait(:north, '30 seconds');
SELECT agent_loop.submit($$Seal census south. SCRIPT: [{"answer": "south counted"}]$$,
                         model => 'scripted') AS south \gset
SELECT status FROM agent_loop.wait(:south, '30 seconds');
SELECT agent_loop.submit($$Seal census, then refund order 6. SCRIPT: [
  {"calls": [{"name": "send_refund", "arguments": {"order_id": 6}}]},
  {"answer": "recalled: {{lessons}}"}]$$,
  model => 'scripted', tools => '{send_refund}') AS resumed \gset
SELECT status FROM agent_loop.wait(:resumed, '30 seconds');
SELECT (SELECT jsonb_agg(jsonb_build_array(task_id, id)) FROM agent_loop.reflections
         WHERE task_id IN (:north, :south)) <@ (content->'lessons') AS names_both
  FROM agent_loop.steps WHERE task_id = :resumed AND n = 1;
SELECT agent_loop.forget('Seal census north') AS forgotten_lessons;
SELECT count(*) FILTER (WHERE line = 'recalled: (lesson forgotten since)') AS forgotten,
       count(*) FILTER (WHERE line LIKE 'recalled: Goal "Seal census south.%') AS south
  FROM regexp_split_to_table((SELECT summary FROM agent_loop.trace(:resumed) WHERE n = 1), E'\n') line;
SELECT agent_loop.approve(:resumed);
SELECT status, result->>'answer' LIKE '%south counted%' AS recalls_south,
       result->>'answer' LIKE '%north counted%' AS recalls_north
  FROM agent_loop.wait(:resumed, '30 seconds');
RESET ROLE;
ALTER SYSTEM RESET agent_loop.memory_window;
SELECT pg_reload_conf();
