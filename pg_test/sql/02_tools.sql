-- Tool calls across steps, parallel calls, a tool that raises, an unknown tool, bad arguments.
-- Several tool calls across steps: sql_query, then a registered function, then an answer.
SELECT agent_loop.submit($$Refunds on March 2nd? SCRIPT: [
  {"content": "Checking the days.", "calls": [{"name": "sql_query", "arguments": {"query": "select day, count(*) from orders group by day order by day;"}}]},
  {"calls": [{"name": "orders_by_day", "arguments": {"day": "2024-03-02"}}]},
  {"answer": "Orders that day: {{last_tool_result}}"}]$$,
  model => 'scripted', tools => '{sql_query,orders_by_day}') AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, phase, kind, summary FROM agent_loop.trace(:id) WHERE n IS DISTINCT FROM 1;

-- Parallel tool calls in one answer: both run, in order, before the next decide.
SELECT agent_loop.submit($$Two at once. SCRIPT: [
  {"calls": [{"name": "refund_total", "arguments": {}},
             {"name": "refund_total", "arguments": {"since": "2024-03-03"}},
             {"name": "orders_by_day", "arguments": {"day": "2024-03-03"}}]},
  {"answer": "{{tool_results}}"}]$$,
  model => 'scripted', tools => '{refund_total,orders_by_day}') AS id \gset
SELECT status, result->>'answer' AS answer, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, turn, kind, summary FROM agent_loop.trace(:id) WHERE kind IN ('tool_call', 'tool_result');

-- A tool that raises, an unknown tool, malformed and wrong arguments: each error goes back to
-- the model as the tool's result, and the task goes on.
SELECT agent_loop.submit($$Try everything. SCRIPT: [
  {"calls": [{"name": "fail_loudly", "arguments": {"reason": "no"}},
             {"name": "telepathy", "arguments": {}},
             {"name": "orders_by_day", "arguments": "{not json"},
             {"name": "orders_by_day", "arguments": {"day": "yesterday-ish"}},
             {"name": "orders_by_day", "arguments": {"date": "2024-03-01"}},
             {"name": "sql_query", "arguments": {"query": "select nonsense from nowhere"}}]},
  {"answer": "Recovered after {{tool_results}}"}]$$,
  model => 'scripted', tools => '{fail_loudly,orders_by_day,sql_query}') AS id \gset
SELECT status, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT n, kind, summary FROM agent_loop.trace(:id) WHERE kind = 'tool_result';

-- sql_query is read-only even when the query calls a writing function, caps rows, and is
-- bounded by agent_loop.tool_timeout.
SELECT agent_loop.submit($$Misbehave. SCRIPT: [
  {"calls": [{"name": "sql_query", "arguments": {"query": "select public.add_note('sneaky')"}},
             {"name": "sql_query", "arguments": {"query": "delete from orders"}},
             {"name": "sql_query", "arguments": {"query": "with gone as (delete from orders returning *) select count(*) from gone"}},
             {"name": "sql_query", "arguments": {"query": "select g from generate_series(1, 50) g -- comment"}},
             {"name": "sql_query", "arguments": {"query": "select pg_sleep(5)"}}]},
  {"answer": "done"}]$$,
  model => 'scripted', tools => '{sql_query}') AS id \gset
SELECT status FROM agent_loop.wait(:id, '30 seconds');
SELECT n, kind, summary FROM agent_loop.trace(:id) WHERE kind = 'tool_result';
SELECT count(*) AS orders_left FROM orders;
SELECT count(*) AS sneaky_notes FROM notes WHERE body = 'sneaky';

-- A writing tool's effect commits with the step that records it.
SELECT agent_loop.submit($$Note it. SCRIPT: [
  {"calls": [{"name": "add_note", "arguments": {"body": "remember the milk"}}]},
  {"answer": "noted as {{last_tool_result}}"}]$$,
  model => 'scripted', tools => '{add_note}') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT author, body FROM notes;
