-- One step log, three wire protocols: OpenAI Chat Completions, OpenAI Responses and Anthropic
-- Messages. The model server checks each request as the real API would (tool results paired
-- with their calls, reasoning handed back unchanged, headers), so a task that succeeds here
-- spoke the protocol correctly across several turns.
\set SHOW_CONTEXT never
SELECT agent_loop.add_model('responses', :'model_url', 'scripted', provider => 'openai_responses');
SELECT agent_loop.add_model('claude', :'model_url', 'scripted', provider => 'anthropic',
                            options => '{"max_tokens": 1024}');
SELECT agent_loop.add_model('claude_secured', :'secured_url', 'scripted', provider => 'anthropic',
                            api_key_env => 'AGENT_LOOP_TEST_KEY');
SELECT agent_loop.add_model('responses_secured', :'secured_url', 'scripted',
                            provider => 'openai_responses', api_key_env => 'AGENT_LOOP_TEST_KEY');
SELECT error_of($$SELECT agent_loop.add_model('x', 'http://example', 'm', provider => 'anthropic_v0')$$);

-- The same script on each protocol: reasoning with a tool call, two parallel calls (one of
-- which fails), then an answer that reports what the server received back.
CREATE TEMP TABLE runs AS
SELECT m.model, agent_loop.submit($$Reason and call. SCRIPT: [
  {"reasoning": "first think", "content": "Looking.", "calls": [{"name": "orders_by_day", "arguments": {"day": "2024-03-02"}}]},
  {"reasoning": "think again", "calls": [{"name": "refund_total", "arguments": {}}, {"name": "fail_loudly", "arguments": {"reason": "x"}}]},
  {"answer": "turn {{turn}}; reasoning back: {{reasoning_seen}}; results: {{tool_results}}"}]$$,
  model => m.model, tools => '{orders_by_day,refund_total,fail_loudly}') AS id
  FROM (VALUES ('scripted'), ('responses'), ('claude'), ('claude_secured'), ('responses_secured')) m(model);
SELECT r.model, w.status, w.result->>'answer' AS answer, w.error_code
  FROM runs r, LATERAL agent_loop.wait(r.id, '30 seconds') w ORDER BY r.model;
-- The log is the same whatever the protocol; only reasoning rows say whose they are.
SELECT r.model, string_agg(s.kind || coalesce('/' || (s.content->>'role'), ''), ' ' ORDER BY s.n) AS log
  FROM runs r JOIN agent_loop.steps s ON s.task_id = r.id WHERE s.kind <> 'reflection'
 GROUP BY r.model ORDER BY r.model;
SELECT r.model, t.summary FROM runs r, agent_loop.trace(r.id) t
 WHERE r.model IN ('responses', 'claude') AND t.summary LIKE 'reasoning%' ORDER BY r.model, t.n;
-- Usage is recorded per step for every protocol.
SELECT r.model, t.input_tokens > 0 AS input_counted, t.output_tokens > 0 AS output_counted
  FROM runs r JOIN agent_loop.tasks t ON t.id = r.id ORDER BY r.model;

-- Error classes per protocol: 529 overloaded is retried; a prompt too long and an exhausted
-- quota or credit balance never are.
CREATE TEMP TABLE faults AS
SELECT m.model, f.fault,
       agent_loop.submit(format($$Fault %s on %s. SCRIPT: [{"fault": "%s", "times": 1, "answer": "recovered"}]$$,
                                f.fault, m.model, f.fault), model => m.model) AS id
  FROM (VALUES ('scripted'), ('responses'), ('claude')) m(model),
       (VALUES ('overloaded'), ('context_length'), ('quota')) f(fault);
SELECT f.model, f.fault, w.status, w.error_code
  FROM faults f, LATERAL agent_loop.wait(f.id, '30 seconds') w ORDER BY f.model, f.fault;
SELECT f.model, f.fault, count(*) FILTER (WHERE s.content->>'message' LIKE '%(retried)') AS retries
  FROM faults f JOIN agent_loop.steps s ON s.task_id = f.id GROUP BY 1, 2 ORDER BY 1, 2;
SELECT f.model, t.error_message FROM faults f JOIN agent_loop.tasks t ON t.id = f.id
 WHERE f.fault = 'context_length' ORDER BY f.model;
SELECT f.model, t.summary FROM faults f, agent_loop.trace(f.id) t
 WHERE f.fault = 'overloaded' AND t.kind = 'error' ORDER BY f.model, t.n;
SELECT f.model, t.summary FROM faults f, agent_loop.trace(f.id) t
 WHERE f.fault = 'quota' AND t.kind = 'error' ORDER BY f.model, t.n;

-- Garbage from each protocol is a bad response, never a crash: retried, then the task fails.
CREATE TEMP TABLE garbage AS
SELECT m.model, agent_loop.submit($$Garbage. SCRIPT: [{"fault": "wrong_shape"}]$$, model => m.model) AS id
  FROM (VALUES ('responses'), ('claude')) m(model);
SELECT g.model, w.status, w.error_code, left(w.error_message, 40) AS message
  FROM garbage g, LATERAL agent_loop.wait(g.id, '30 seconds') w ORDER BY g.model;

-- Switching a model's provider changes nothing else: a task begun over Chat Completions
-- resumes over Anthropic Messages from the same log (tool_use/tool_result pairs rebuilt).
SELECT agent_loop.add_model('switch', :'model_url', 'scripted');
SELECT agent_loop.submit($$Switch. SCRIPT: [
  {"calls": [{"name": "refund_total", "arguments": {}}]},
  {"answer": "finished on turn {{turn}} with {{tool_results}}"}]$$,
  model => 'switch', tools => '{refund_total}', max_steps => 1) AS id \gset
SELECT status, error_code FROM agent_loop.wait(:id, '30 seconds');
SELECT agent_loop.add_model('switch', :'model_url', 'scripted', provider => 'anthropic');
SELECT agent_loop.retry(:id, max_steps => 1);
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
