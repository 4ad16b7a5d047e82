-- Fair sharing across owners: a claim takes queued tasks in turn, each owner's first (fewest in
-- flight first), then each one's second; agent_loop.max_in_flight_per_owner caps what one owner
-- holds of a worker. So a flood of one role's tasks delays another role's first step by at
-- most one claim round.
\set VERBOSITY terse
CREATE ROLE flooder LOGIN;
GRANT EXECUTE ON FUNCTION await_true(text) TO flooder;
-- A flood of slow tasks (3 s each) fills the worker: 64 in flight (agent_loop.max_in_flight),
-- the rest queued.
SET ROLE flooder;
SELECT count(agent_loop.submit(format('Flood %s. SCRIPT: [{"delay_ms": 3000, "answer": "ok"}]', i), model => 'scripted'))
  FROM generate_series(1, 200) i;
RESET ROLE;
SELECT await_true($$(SELECT count(*) = 64 FROM agent_loop.tasks WHERE owner = 'flooder'::regrole AND status = 'running')$$) AS worker_full;
-- Bob's task waits for one round (a flood task's end frees a place), not for the 136 queued
-- before it.
SET ROLE bob;
SELECT agent_loop.submit($$After the flood. SCRIPT: [{"answer": "served"}]$$, model => 'scripted') AS bobs \gset
SELECT status, result->>'answer' AS answer FROM agent_loop.wait(:bobs, '30 seconds');
RESET ROLE;
SELECT started_at - created_at < interval '4.5 seconds' AS picked_within_a_round,
       (SELECT count(*) FROM agent_loop.tasks WHERE owner = 'flooder'::regrole AND status = 'queued') > 64 AS flood_still_queued
  FROM agent_loop.tasks WHERE id = :bobs;

-- With a cap per owner the flood holds 32 places, and bob's next task starts at once.
ALTER SYSTEM SET agent_loop.max_in_flight_per_owner = 32;
SELECT pg_reload_conf();
SELECT await_true($$(SELECT count(*) <= 32 FROM agent_loop.tasks WHERE owner = 'flooder'::regrole AND status = 'running')$$) AS flood_capped;
SET ROLE bob;
SELECT agent_loop.submit($$Beside the flood. SCRIPT: [{"answer": "served"}]$$, model => 'scripted') AS bobs \gset
SELECT status FROM agent_loop.wait(:bobs, '30 seconds');
RESET ROLE;
SELECT started_at - created_at < interval '1.5 seconds' AS picked_at_once,
       (SELECT count(*) FROM agent_loop.tasks WHERE owner = 'flooder'::regrole AND status = 'running') <= 32 AS flood_held_32
  FROM agent_loop.tasks WHERE id = :bobs;

ALTER SYSTEM RESET agent_loop.max_in_flight_per_owner;
SELECT pg_reload_conf();
SELECT count(agent_loop.cancel(id)) > 0 AS flood_cancelled FROM agent_loop.tasks
 WHERE owner = 'flooder'::regrole AND status IN ('queued', 'running');
SELECT await_true($$(SELECT count(*) = 0 FROM agent_loop.tasks WHERE owner = 'flooder'::regrole AND status IN ('queued', 'running'))$$) AS flood_gone;
