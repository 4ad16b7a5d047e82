-- Task decomposition: spawn_subtasks starts tasks of their own; the parent waits without a
-- worker and resumes with their results; cancelling a parent cancels its subtree.
\set SHOW_CONTEXT never

-- Three subtasks, run in parallel as alice with the parent's model, tools (but
-- spawn_subtasks), limits and require_tool_use (here off: "Say hi" needs no data); one of
-- them fails. The parent's model reads each outcome.
SET ROLE alice;
SELECT agent_loop.submit($$Split it. SCRIPT: [
  {"calls": [{"name": "spawn_subtasks", "arguments": {"goals": [
     "Total refunds. SCRIPT: [{\"delay_ms\": 400, \"calls\": [{\"name\": \"refund_total\", \"arguments\": {}}]}, {\"answer\": \"refunds: {{last_tool_result}}\"}]",
     "Say hi. SCRIPT: [{\"answer\": \"hi\"}]",
     "A goal the scripted model cannot read"]}}]},
  {"answer": "Combined: {{last_tool_result}}"}]$$,
  model => 'scripted', tools => '{refund_total,spawn_subtasks}', max_steps => 4,
  require_tool_use => false) AS id \gset
SELECT await_status(:id, 'waiting_subtasks') AS parent_waits;
SELECT lease_worker IS NULL AS no_worker FROM agent_loop.tasks WHERE id = :id;
SELECT owner, model, tools, max_steps, require_tool_use, parent_call_id, left(goal, 14) AS goal
  FROM agent_loop.tasks WHERE parent_id = :id ORDER BY id;
SELECT status, steps_done FROM agent_loop.wait(:id, '30 seconds');
SELECT status, error_code, left(goal, 14) AS goal FROM agent_loop.tasks WHERE parent_id = :id ORDER BY id;
SELECT left(e->>'goal', 14) AS goal, e->>'status' AS status, e->>'answer' AS answer,
       left(e->>'error', 40) AS error, (e->>'task')::bigint > :id AS own_task
  FROM agent_loop.steps s, jsonb_array_elements((s.content->>'output')::jsonb) e
 WHERE s.task_id = :id AND s.kind = 'tool_result';
SELECT result->>'answer' LIKE 'Combined: [%"answer":"refunds: 240"%' AS parent_read_them
  FROM agent_loop.tasks WHERE id = :id;

-- Arguments that cannot start subtasks come back to the model as the call's error.
SELECT agent_loop.submit($$Split badly. SCRIPT: [
  {"calls": [{"name": "spawn_subtasks", "arguments": {"goals": []}}]},
  {"answer": "{{last_tool_result}}"}]$$,
  model => 'scripted', tools => '{spawn_subtasks}') AS id \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) AS subtasks FROM agent_loop.tasks WHERE parent_id = :id;

-- Cancelling the parent cancels the whole subtree, model calls in flight included.
SELECT agent_loop.submit($$Split slowly. SCRIPT: [
  {"calls": [{"name": "spawn_subtasks", "arguments": {"goals": [
     "Slow one. SCRIPT: [{\"delay_ms\": 5000, \"answer\": \"late\"}]",
     "Slow two. SCRIPT: [{\"delay_ms\": 5000, \"answer\": \"late\"}]"]}}]},
  {"answer": "never"}]$$,
  model => 'scripted', tools => '{spawn_subtasks}') AS id \gset
SELECT await_status(:id, 'waiting_subtasks') AS parent_waits;
SELECT bool_and(await_status(c.id, 'running')) AS subtasks_running
  FROM agent_loop.tasks c WHERE c.parent_id = :id;
SELECT agent_loop.cancel(:id);
SELECT status, error_message FROM agent_loop.wait(:id, '30 seconds');
SELECT count(*) FILTER (WHERE w.status = 'cancelled') AS subtasks_cancelled
  FROM agent_loop.tasks c, agent_loop.wait(c.id, '30 seconds') w WHERE c.parent_id = :id;
RESET ROLE;
