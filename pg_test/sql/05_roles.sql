-- Each role sees and touches only its own tasks; tools run with the submitter's privileges.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET ROLE alice;
SELECT agent_loop.submit($$Alice's question. SCRIPT: [
  {"calls": [{"name": "read_secret", "arguments": {}},
             {"name": "add_note", "arguments": {"body": "alice was here"}},
             {"name": "sql_query", "arguments": {"query": "select code from secrets"}},
             {"name": "sql_query", "arguments": {"query": "select count(*) from agent_loop.tasks"}}]},
  {"answer": "{{tool_results}}"}]$$,
  model => 'scripted', tools => '{read_secret,add_note,sql_query}') AS alice_task \gset
-- read_secret is executable by PUBLIC, but alice cannot read the table behind it.
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:alice_task, '30 seconds');
SELECT author, body FROM notes WHERE body = 'alice was here';
SELECT owner, count(*) FROM agent_loop.steps GROUP BY owner;
SELECT owner, status FROM agent_loop.tasks_overview;
RESET ROLE;

-- Bob cannot see, wait for, trace or cancel alice's task.
SET ROLE bob;
SELECT count(*) AS visible_tasks FROM agent_loop.tasks;
SELECT count(*) AS visible_steps FROM agent_loop.steps;
SELECT count(*) AS visible_reflections FROM agent_loop.reflections;
SELECT count(*) AS overview_rows FROM agent_loop.tasks_overview;
SELECT error_of(format('SELECT * FROM agent_loop.trace(%s)', :alice_task));
SELECT error_of(format('SELECT agent_loop.cancel(%s)', :alice_task));
SELECT error_of(format('SELECT * FROM agent_loop.wait(%s, %L)', :alice_task, '1 second'));
-- Nor write to the tables directly.
UPDATE agent_loop.tasks SET status = 'failed';
INSERT INTO agent_loop.steps (task_id, n, turn, owner, phase, kind, content) VALUES (1, 99, 0, 'bob', 'act', 'error', '{}');
-- Bob may not use a tool whose function he cannot execute.
RESET ROLE;
REVOKE EXECUTE ON FUNCTION add_note(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_note(text) TO alice;
SET ROLE bob;
SELECT agent_loop.submit('note', model => 'scripted', tools => '{add_note}');
RESET ROLE;

-- An admin sees everything.
SET ROLE carol;
SELECT count(*) > 0 AS sees_all FROM agent_loop.tasks WHERE owner = 'alice'::regrole;
RESET ROLE;
