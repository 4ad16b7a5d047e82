-- The mistakes real models make, and the one defined response to each (core/src/guards.rs):
-- never a silent loop until max_steps. (Broken JSON arguments: 02_tools.)
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- An answer made up without calling a tool. The task has tools, so by default its answer must
-- rest on a tool's result: the first decide asks for a call (tool_choice "required"), an
-- answer anyway is sent back, and the third ends the task.
SELECT agent_loop.submit($$Made up. SCRIPT: [{"answer": "Product A sold most (tool_choice={{tool_choice}})"}]$$,
       model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT status, error_code, error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, left(summary, 120) AS summary FROM agent_loop.trace(:id)
 WHERE kind IN ('message', 'verification') AND turn > 0;
-- Sent back once, a model that then calls a tool answers from its result.
SELECT agent_loop.submit($$Made up, then looked. SCRIPT: [{"answer": "a guess"},
  {"calls": [{"name": "sql_query", "arguments": {"query": "SELECT 7 AS n"}}]},
  {"answer": "from data (tool_choice={{tool_choice}}): {{last_tool_result}}"}]$$,
       model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
-- require_tool_use => false: the model may answer at once.
SELECT agent_loop.submit($$No data needed. SCRIPT: [{"answer": "hello (tool_choice={{tool_choice}})"}]$$,
       model => 'scripted', tools => '{sql_query}', require_tool_use => false) AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
-- Without tools there is nothing to require.
SELECT agent_loop.submit($$No tools. SCRIPT: [{"answer": "hi"}]$$, model => 'scripted') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');

-- Output the model's server could not parse (llama.cpp's HTTP 500, e.g. when the model calls
-- a tool it does not have). Sent again unchanged, the same prompt gets the same output, so it
-- is not retried as it is: the error is recorded (not a step) and the model decides again with
-- the other tool_choice: "required" while no tool has a result, "none" after.
SELECT agent_loop.submit($$Unparsable first. SCRIPT: [
  {"fault": "unparsable", "if_tool_choice": {"required": {"calls": [{"name": "sql_query", "arguments": {"query": "SELECT 1 AS one"}}]}}},
  {"answer": "{{last_tool_result}}"}]$$,
       model => 'scripted', tools => '{sql_query}', require_tool_use => false) AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, summary FROM agent_loop.trace(:id) WHERE kind IN ('error', 'tool_call');
SELECT agent_loop.submit($$Unparsable after data. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "SELECT 2 AS two"}}]},
  {"fault": "unparsable", "if_tool_choice": {"none": {"answer": "tool_choice={{tool_choice}}: {{last_tool_result}}"}}}]$$,
       model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
-- Unparsable whatever is asked: the second time ends the task, with its own code.
SELECT agent_loop.submit($$Always unparsable. SCRIPT: [{"fault": "unparsable"}]$$,
       model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT status, error_code, error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS requests_recorded FROM agent_loop.steps WHERE task_id = :id AND kind = 'error';

-- A call written out as text, as a small model does when its server did not parse it: taken as
-- the call it spells (it names a tool of the task), and run.
SELECT agent_loop.submit($$Spelled out. SCRIPT: [{"answer": "```json\n{\"name\": \"sql_query\", \"arguments\": {\"query\": \"SELECT 3 AS three\"}}\n```"},
  {"answer": "from the call: {{last_tool_result}}"}]$$,
       model => 'scripted', tools => '{sql_query}', require_tool_use => false) AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, summary FROM agent_loop.trace(:id) WHERE kind = 'tool_call';

-- An answer that ignores output_schema: sent back with what is wrong, twice; the third ends
-- the task with its own code instead of using every step.
SELECT agent_loop.submit($$Shapeless. SCRIPT: [{"answer": "seven"}]$$, model => 'scripted',
       output_schema => '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}',
       max_steps => 10) AS id \gset
SELECT status, error_code, left(error_message, 110) AS error_message, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS sent_back FROM agent_loop.steps WHERE task_id = :id AND kind = 'verification';
