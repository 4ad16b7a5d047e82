-- What a final answer must satisfy (a JSON Schema, a SQL check), the plan revised after
-- failures, guidance sent to a running task, and compaction of a long log.
\set SHOW_CONTEXT never
SELECT statement, error_of(statement) FROM (VALUES
    ($$SELECT agent_loop.submit('g', model => 'scripted', output_schema => '[1]')$$),
    ($$SELECT agent_loop.submit('g', model => 'scripted', accept_if => '$1::int = (SELECT count(*) FROM nowhere)')$$),
    ($$SELECT agent_loop.submit('g', model => 'scripted', accept_if => '$1 = ')$$),
    ($$SELECT agent_loop.send(424242, 'hello')$$),
    ($$SELECT agent_loop.add_model('tiny', 'http://example', 'm', context_window => 10)$$)
) AS bad(statement);
-- Names resolve with the default search_path, and privileges are the submitter's: bob may not
-- read secrets, so a check that does is refused at submit.
SET ROLE bob;
SELECT error_of($$SELECT agent_loop.submit('g', model => 'scripted', accept_if => '$1 = (SELECT code FROM secrets)')$$);
RESET ROLE;

-- Structured output: the answer must match the schema. A first answer that does not is sent
-- back with the reason; the second is parsed and stored as jsonb in result->'output'.
SELECT agent_loop.submit($$Best day as JSON. SCRIPT: [
  {"answer": "The best day is March 2nd."},
  {"answer": "{\"day\": \"2024-03-02\"}"},
  {"answer": "```json\n{\"day\": \"2024-03-02\", \"orders\": 4}\n```"}]$$,
  model => 'scripted', output_schema => '{"type": "object", "required": ["day", "orders"],
    "properties": {"day": {"type": "string"}, "orders": {"type": "integer", "minimum": 0}},
    "additionalProperties": false}') AS id \gset
SELECT status, result->'output' AS output, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, phase, kind, summary FROM agent_loop.trace(:id) WHERE kind IN ('verification', 'reflection');

-- The same on the Anthropic protocol (no response format there: the schema is an instruction).
SELECT agent_loop.add_model('claude_json', :'model_url', 'scripted', provider => 'anthropic');
SELECT agent_loop.submit($$JSON please. SCRIPT: [{"answer": "[1, 2, 3]"}]$$,
  model => 'claude_json', output_schema => '{"type": "array", "items": {"type": "integer"}}') AS id \gset
SELECT status, result FROM agent_loop.wait(:id, '30 seconds');

-- A check over the answer and the database, run as the owner: the wrong count is rejected
-- and shown to the model, which answers again; the plan is revised after the rejection.
SET ROLE alice;
SELECT agent_loop.submit($$How many orders? SCRIPT: [
  {"answer": "11"},
  {"answer": "12 (told: {{last_user}})"}]$$,
  model => 'scripted', accept_if => $$split_part($1, ' ', 1)::int = (SELECT count(*) FROM orders)$$) AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, phase, kind, summary FROM agent_loop.trace(:id) WHERE n IS DISTINCT FROM 1;
-- A check that raises or yields NULL rejects the answer too; when the steps run out the task
-- fails with answer_rejected and the last reason.
SELECT agent_loop.submit($$Count. SCRIPT: [{"answer": "many"}]$$, model => 'scripted', max_steps => 2,
  accept_if => $$$1::int > 0$$) AS id \gset
SELECT status, error_code, error_message FROM agent_loop.wait(:id, '30 seconds');
-- The check runs read-only with the owner's privileges: it cannot write.
SELECT agent_loop.submit($$Sneak. SCRIPT: [{"answer": "x"}]$$, model => 'scripted', max_steps => 1,
  accept_if => $$public.add_note('sneaky check') > 0$$) AS id \gset
SELECT status, error_code, error_message FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS sneaky FROM notes WHERE body = 'sneaky check';
RESET ROLE;

-- Failure attribution: after two failing tool calls a revised plan is written (reflect) and
-- the model sees it before its next decide.
SELECT agent_loop.submit($$Keep failing. SCRIPT: [
  {"calls": [{"name": "fail_loudly", "arguments": {"reason": "first"}}]},
  {"calls": [{"name": "fail_loudly", "arguments": {"reason": "first"}}]},
  {"answer": "I was told: {{last_user}}"}]$$,
  model => 'scripted', tools => '{fail_loudly}') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, phase, kind, left(summary, 60) AS summary FROM agent_loop.trace(:id) WHERE kind = 'reflection';

-- Steering: send() while the model is thinking; the next step takes the message in and the
-- model sees it at its next decide. Only the owner may send, and not to an ended task.
SET ROLE alice;
SELECT agent_loop.submit($$Steer me. SCRIPT: [
  {"delay_ms": 600, "calls": [{"name": "refund_total", "arguments": {}}]},
  {"answer": "Heard: {{last_user}}"}]$$, model => 'scripted', tools => '{refund_total}') AS id \gset
SELECT await_running(:id);
SELECT agent_loop.send(:id, 'only count March 3rd') > 0 AS sent;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, phase, summary FROM agent_loop.trace(:id) WHERE summary LIKE 'guidance%';
SELECT count(*) AS unread FROM agent_loop.guidance;
SELECT error_of(format('SELECT agent_loop.send(%s, %L)', :id, 'too late'));
RESET ROLE;
SET ROLE bob;
SELECT error_of(format('SELECT agent_loop.send(%s, %L)', :id, 'not mine'));
RESET ROLE;
-- A message sent while a step runs its tools: the answer the model then gives without it is
-- set aside, and the model decides again with the message (nothing is left unread).
SET ROLE alice;
SELECT agent_loop.submit($$Steer me mid-step. SCRIPT: [
  {"calls": [{"name": "nap", "arguments": {"seconds": 1}}]},
  {"answer": "Heard: {{last_user}}"}]$$, model => 'scripted', tools => '{nap}') AS id \gset
SELECT await_true(format('EXISTS (SELECT FROM agent_loop.tool_activity WHERE task_id = %s)', :id))
    AS napping;
SELECT agent_loop.send(:id, 'mind the refunds') > 0 AS sent;
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, phase, kind, left(summary, 50) AS summary FROM agent_loop.trace(:id) WHERE n > 1;
SELECT count(*) AS unread FROM agent_loop.guidance WHERE task_id = :id;
RESET ROLE;
-- A message sent before the task starts is in its first prompt.
BEGIN;
SELECT agent_loop.submit($$Queued guidance. SCRIPT: [{"answer": "Heard: {{last_user}}"}]$$,
  model => 'scripted', run_after => now() + interval '300 ms') AS id \gset
SELECT agent_loop.send(:id, 'be quick') > 0 AS sent;
COMMIT;
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');

-- Compaction: a model with a small context window. Once the prompt passes 75% of it, older
-- turns are summarised into a compaction step and the last two stay verbatim; the model keeps
-- getting valid requests (every tool result still follows its call), and the full log stays
-- in steps. The scripted model repeats its call until it sees the summary, then answers.
SELECT agent_loop.add_model('small', :'model_url', 'scripted', context_window => 600);
SELECT agent_loop.submit($$Long task. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "select g, repeat('x', 60), {{turn}} AS turn from generate_series(1, 5) g"}}],
   "if_compacted": {"answer": "compacted: {{turn}} turns verbatim; the summary: {{last_user}}"}}]$$,
  model => 'small', tools => '{sql_query}') AS id \gset
SELECT status, left(result->>'answer', 110) AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, left(summary, 90) AS summary FROM agent_loop.trace(:id) WHERE kind = 'compaction';
SELECT count(*) AS tool_results_kept FROM agent_loop.steps WHERE task_id = :id AND kind = 'tool_result';
-- A model that writes its own summaries: one short request (no tools, at most 200 tokens)
-- when the log is compacted; its text is the summary, its tokens and cost are on the
-- compaction step, and the task's totals include them.
SELECT agent_loop.add_model('small_writer', :'model_url', 'scripted', context_window => 600,
                            writes_summaries => true, input_price => 1, output_price => 2);
SELECT agent_loop.submit($$Long task, summarised. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "select g, repeat('x', 60), {{turn}} AS turn from generate_series(1, 5) g"}}],
   "if_compacted": {"answer": "the summary: {{last_user}}"}}]$$,
  model => 'small_writer', tools => '{sql_query}') AS id \gset
SELECT status, left(result->>'answer', 110) AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, left(summary, 90) AS summary, tokens > 0 AS metered FROM agent_loop.trace(:id)
 WHERE kind = 'compaction';
SELECT t.input_tokens = sum(s.input_tokens) AND t.output_tokens = sum(s.output_tokens)
       AND t.cost = sum(s.cost) AS totals_include_the_summary
  FROM agent_loop.tasks t JOIN agent_loop.steps s ON s.task_id = t.id WHERE t.id = :id GROUP BY t.id;
-- When the summary request fails, the structured summary stands in.
SELECT agent_loop.submit($$Long task, summary fails. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "select g, repeat('x', 60), {{turn}} AS turn from generate_series(1, 5) g"}}],
   "summary": {"fault": "500"}, "if_compacted": {"answer": "went on"}}]$$,
  model => 'small_writer', tools => '{sql_query}') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, left(summary, 60) AS summary, tokens FROM agent_loop.trace(:id) WHERE kind = 'compaction';
-- Without a context window nothing is compacted.
SELECT count(*) AS compactions FROM agent_loop.steps s JOIN agent_loop.tasks t ON t.id = s.task_id
 WHERE s.kind = 'compaction' AND t.model NOT IN ('small', 'small_writer');
