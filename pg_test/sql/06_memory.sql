-- Reflect and recall: the lesson written when task 1 ends is in task 2's context.
SET ROLE alice;
SELECT agent_loop.submit($$Compute the refund total for the penguin store. SCRIPT: [
  {"calls": [{"name": "refund_total", "arguments": {}}]},
  {"answer": "Penguin refunds total {{last_tool_result}}"}]$$,
  model => 'scripted', tools => '{refund_total}') AS first \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:first, '30 seconds');
SELECT outcome, left(lesson, 80) AS lesson FROM agent_loop.reflections WHERE task_id = :first;
-- Its words for recall: the goal's, the tool's and the answer's, not the template's ("goal",
-- "succeeded", "step", "using", "tools", "answer": every lesson has them).
SELECT lesson_tsv FROM agent_loop.reflections WHERE task_id = :first;

-- A related goal recalls it first: it is in the perceive step, and the model received it.
SELECT agent_loop.submit($$What were the penguin store refunds? SCRIPT: [{"answer": "I remember: {{lessons}}"}]$$,
       model => 'scripted') AS second \gset
SELECT status, left(result->>'answer', 80) AS answer FROM agent_loop.wait(:second, '30 seconds');
SELECT left(line, 80) AS first_lines FROM regexp_split_to_table(
    (SELECT summary FROM agent_loop.trace(:second) WHERE n = 1), E'\n') WITH ORDINALITY AS l(line, i)
 WHERE i <= 2;
RESET ROLE;

-- Another role's lessons are never recalled.
SET ROLE bob;
SELECT agent_loop.submit($$Penguin store refunds? SCRIPT: [{"answer": "lessons: {{lessons}}"}]$$,
       model => 'scripted') AS bobs \gset
SELECT result->>'answer' AS answer FROM agent_loop.wait(:bobs, '30 seconds');
RESET ROLE;

-- Recall ranks only the owner's latest agent_loop.memory_window lessons: with a window of one,
-- the penguin lessons are out of reach once a newer one exists; only that one (it shares the
-- words of the script) is recalled.
ALTER SYSTEM SET agent_loop.memory_window = 1;
SELECT pg_reload_conf();
SET ROLE alice;
SELECT agent_loop.submit($$Count the walrus orders. SCRIPT: [{"answer": "none"}]$$, model => 'scripted') AS walrus \gset
SELECT status FROM agent_loop.wait(:walrus, '30 seconds');
SELECT agent_loop.submit($$Penguin store refunds again? SCRIPT: [{"answer": "lessons: {{lessons}}"}]$$,
       model => 'scripted') AS third \gset
SELECT result->>'answer' AS answer FROM agent_loop.wait(:third, '30 seconds');
RESET ROLE;
ALTER SYSTEM RESET agent_loop.memory_window;
SELECT pg_reload_conf();
