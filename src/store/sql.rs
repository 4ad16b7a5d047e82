//! The statements, with their parameter types.

use pgrx::pg_sys::PgBuiltInOids as T;
use pgrx::PgOid;

pub struct Sql {
    pub text: &'static str,
    pub types: &'static [PgOid],
}

const INT4: PgOid = PgOid::BuiltIn(T::INT4OID);
const INT8: PgOid = PgOid::BuiltIn(T::INT8OID);
const FLOAT8: PgOid = PgOid::BuiltIn(T::FLOAT8OID);
const TEXT: PgOid = PgOid::BuiltIn(T::TEXTOID);
const OID: PgOid = PgOid::BuiltIn(T::OIDOID);
const JSONB: PgOid = PgOid::BuiltIn(T::JSONBOID);
const INT4_ARRAY: PgOid = PgOid::BuiltIn(T::INT4ARRAYOID);
const OID_ARRAY: PgOid = PgOid::BuiltIn(T::OIDARRAYOID);
const INT8_ARRAY: PgOid = PgOid::BuiltIn(T::INT8ARRAYOID);
const TEXT_ARRAY: PgOid = PgOid::BuiltIn(T::TEXTARRAYOID);

/// Statements over tables that grow and shrink by the thousand between two ANALYZEs, whose
/// good plan walks an index in order and stops early. A plan is cached for the worker's life;
/// one made from stale statistics ("3 rows") read every queued task or every lesson of the
/// owner through a bitmap and sorted them, at each call (a 6x slower drain of a fresh install's
/// first burst). They run without bitmap and sequential scans: the index walk is what is left.
pub static INDEX_WALKS: [&Sql; 4] = [
    &CLAIM,
    &CANCEL_QUEUED,
    &CANCEL_REQUESTED_RUNNING,
    &LATEST_LESSONS,
];

/// Statements whose custom plans are no better than the generic one but cost more to make than
/// to run (`name = ANY ($1)` over the small tools registry, at every claim). They always use
/// the generic plan (bench/HISTORY.md has the figures).
pub static GENERIC_PLANS: [&Sql; 1] = [&TOOLS];

/// Queued tasks, and tasks waiting for approval or subtasks, whose cancel was requested end
/// here: no worker holds them. SKIP LOCKED, as every statement over many tasks: a role that
/// holds a lock on its own task's row must not stall the claim for everyone (the task is
/// cancelled at a later wake-up).
pub static CANCEL_QUEUED: Sql = Sql {
    text: "UPDATE agent_loop.tasks t
              SET status = 'cancelled', finished_at = now(), error_code = 'cancelled',
                  error_message = CASE t.status
                                    WHEN 'queued' THEN 'cancelled before it started'
                                    WHEN 'waiting_approval' THEN 'cancelled while waiting for approval'
                                    ELSE 'cancelled while waiting for its subtasks' END
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE cancel_requested_at IS NOT NULL
                      AND status IN ('queued', 'waiting_approval', 'waiting_subtasks')
                      FOR UPDATE SKIP LOCKED) pending
            WHERE t.id = pending.id
        RETURNING t.id",
    types: &[],
};

/// Running tasks whose cancel was requested. The inner query states exactly the predicate of
/// tasks_cancel_pending, and OFFSET 0 keeps `status = 'running'` out of it: given that
/// condition the planner walked tasks_running instead, every running task and its dead
/// entries (620 us a call in bench/quick.sh, against microseconds).
pub static CANCEL_REQUESTED_RUNNING: Sql = Sql {
    text: "SELECT id FROM (SELECT id, status FROM agent_loop.tasks
                            WHERE cancel_requested_at IS NOT NULL
                              AND status IN ('queued', 'running', 'waiting_approval',
                                             'waiting_subtasks')
                           OFFSET 0) pending
            WHERE status = 'running'",
    types: &[],
};

pub static REQUEUE_EXPIRED: Sql = Sql {
    text: "UPDATE agent_loop.tasks t
              SET status = 'queued', lease_worker = NULL, lease_until = NULL
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE status = 'running' AND lease_until < now()
                      FOR UPDATE SKIP LOCKED) expired
            WHERE t.id = expired.id
        RETURNING t.id",
    types: &[],
};

/// Fair across owners: `owners` walks the distinct owners of queued tasks (a skip scan of
/// tasks_claimable), each gives its due tasks in its own order (priority, then age), and the
/// claim takes them in turn: first each owner's first, fewest in flight first (`$4`, `$5`: the
/// owners this worker drives tasks for and how many), then each one's second, and so on; an
/// owner at `$6` tasks in flight (0: no cap) gives none. SKIP LOCKED where each owner's tasks
/// are read: concurrent claimers (and submitters) never wait on each other, and two claimers
/// take different tasks (rows read but not chosen stay locked until the claim commits). The
/// chosen rows are locked, so still queued and not cancelled: the update names them by id
/// alone, an array the primary key finds. Rechecked through `IN (SELECT ...)` and the queued
/// predicate, the plan walked every queued task (24 ms a claim of 16 with 10,000 queued).
pub static CLAIM: Sql = Sql {
    text: "WITH RECURSIVE owners (owner) AS (
               (SELECT owner::oid FROM agent_loop.tasks
                 WHERE status = 'queued' AND cancel_requested_at IS NULL
                 ORDER BY owner::oid LIMIT 1)
               UNION ALL
               SELECT (SELECT q.owner::oid FROM agent_loop.tasks q
                        WHERE q.status = 'queued' AND q.cancel_requested_at IS NULL
                          AND q.owner::oid > o.owner
                        ORDER BY q.owner::oid LIMIT 1)
                 FROM owners o WHERE o.owner IS NOT NULL),
           load AS (SELECT o.owner,
                           coalesce((SELECT sum(n) FROM unnest($4::oid[], $5::int4[]) AS f (owner, n)
                                      WHERE f.owner = o.owner), 0)::int4 AS in_flight
                      FROM owners o WHERE o.owner IS NOT NULL),
           turns AS (SELECT d.id, d.turn + l.in_flight AS turn, d.priority, d.run_after
                       FROM load l,
                            LATERAL (SELECT q.id, q.priority, q.run_after,
                                            row_number() OVER (ORDER BY q.priority DESC, q.run_after, q.id) AS turn
                                       FROM (SELECT q.id, q.priority, q.run_after FROM agent_loop.tasks q
                                              WHERE q.owner::oid = l.owner AND q.status = 'queued'
                                                AND q.cancel_requested_at IS NULL AND q.run_after <= now()
                                              ORDER BY q.priority DESC, q.run_after, q.id
                                              LIMIT CASE WHEN $6 > 0 THEN greatest($6 - l.in_flight, 0)
                                                         ELSE $1 END
                                                FOR UPDATE SKIP LOCKED) q) d),
           chosen AS (SELECT id FROM turns ORDER BY turn, priority DESC, run_after, id LIMIT $1)
           UPDATE agent_loop.tasks t
              SET status = 'running', phase = 'perceive', attempts = t.attempts + 1,
                  lease_worker = $2, lease_until = now() + $3 * interval '1 second',
                  started_at = coalesce(t.started_at, now())
            WHERE t.id = ANY (ARRAY(SELECT id FROM chosen))
        RETURNING t.id, t.owner::oid AS owner, t.goal, t.model, t.tools, t.max_steps,
                  t.token_budget, extract(epoch FROM t.deadline)::float8 AS deadline_epoch,
                  t.attempts, t.steps_done, t.input_tokens, t.cached_tokens, t.output_tokens,
                  t.reasoning_tokens, t.output_schema::text AS output_schema, t.accept_if,
                  coalesce(t.require_tool_use, t.tools <> '{}') AS needs_data,
                  t.cost::float8 AS cost,
                  EXISTS (SELECT FROM agent_loop.guidance g WHERE g.task_id = t.id)
                      AS guidance_pending,
                  EXISTS (SELECT FROM agent_loop.steps s WHERE s.task_id = t.id) AS has_log",
    types: &[INT4, INT4, INT4, OID_ARRAY, INT4_ARRAY, INT4],
};

/// At worker start: tasks leased to a process that is no longer a live worker (after a crash
/// or kill) go back to the queue at once instead of waiting for their lease to expire.
pub static REQUEUE_ORPHANS: Sql = Sql {
    text: "UPDATE agent_loop.tasks t
              SET status = 'queued', lease_worker = NULL, lease_until = NULL
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE status = 'running' AND lease_worker <> ALL ($1)
                      FOR UPDATE SKIP LOCKED) orphaned
            WHERE t.id = orphaned.id",
    types: &[INT4_ARRAY],
};

/// `agent_loop.retention`: the oldest ended tasks go, with their steps, a bounded batch at a
/// time so one round never holds many locks. Lessons stay in `reflections`.
pub static PRUNE_ENDED: Sql = Sql {
    text: "WITH old AS (SELECT id FROM agent_loop.tasks
                         WHERE status IN ('succeeded', 'failed', 'cancelled')
                           AND finished_at < now() - $1 * interval '1 second'
                         ORDER BY finished_at
                         LIMIT $2
                           FOR UPDATE SKIP LOCKED),
                steps AS (DELETE FROM agent_loop.steps s USING old WHERE s.task_id = old.id)
           DELETE FROM agent_loop.tasks t USING old WHERE t.id = old.id
           RETURNING t.id",
    types: &[INT4, INT4],
};

pub static RENEW_LEASES: Sql = Sql {
    text: "UPDATE agent_loop.tasks t SET lease_until = now() + $3 * interval '1 second'
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE id = ANY ($1) AND lease_worker = $2 AND status = 'running'
                      FOR UPDATE SKIP LOCKED) held
            WHERE t.id = held.id",
    types: &[INT8_ARRAY, INT4, INT4],
};

/// Some of this worker's running tasks go back to the queue (their step was lost with the
/// executor that ran it); they resume from their logs.
pub static RELEASE_TASKS: Sql = Sql {
    text: "UPDATE agent_loop.tasks t SET status = 'queued', lease_worker = NULL, lease_until = NULL
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE id = ANY ($1) AND lease_worker = $2 AND status = 'running'
                      FOR UPDATE SKIP LOCKED) held
            WHERE t.id = held.id",
    types: &[INT8_ARRAY, INT4],
};

pub static RELEASE_LEASES: Sql = Sql {
    text: "UPDATE agent_loop.tasks t SET status = 'queued', lease_worker = NULL, lease_until = NULL
             FROM (SELECT id FROM agent_loop.tasks
                    WHERE lease_worker = $1 AND status = 'running'
                      FOR UPDATE SKIP LOCKED) held
            WHERE t.id = held.id",
    types: &[INT4],
};

pub static MODEL: Sql = Sql {
    text: "SELECT name, provider, base_url, model, api_key_env,
                  extract(epoch FROM request_timeout)::float8 * 1000 AS timeout_ms,
                  max_concurrency, options, context_window, writes_summaries,
                  input_price::float8 AS input_price, cached_input_price::float8 AS cached_input_price,
                  output_price::float8 AS output_price
             FROM agent_loop.models WHERE name = $1",
    types: &[TEXT],
};

pub static TOOLS: Sql = Sql {
    text: "SELECT t.name, t.description, t.parameters,
                  CASE WHEN t.function IS NOT NULL
                       THEN format('%I.%I', n.nspname, p.proname) END AS target,
                  t.signature, t.returns_set, t.returns_void, t.needs_approval
             FROM agent_loop.tools t
             LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.function
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE t.name = ANY ($1)
              AND (t.function IS NULL OR p.oid IS NOT NULL)
            ORDER BY t.name",
    types: &[TEXT_ARRAY],
};

/// The owner's latest `$2` lessons (`agent_loop.memory_window`, by task) with their lexemes,
/// among which recall ranks (`agent_loop_core::recall`): only so many, so that a perceive
/// phase costs the same however much an owner has learned. Read once per owner for a claim's
/// tasks; ranking them in SQL (`@@` and `ts_rank` for each goal and lesson) was 278 us a task.
pub static LATEST_LESSONS: Sql = Sql {
    text: "SELECT task_id, id, lesson, tsvector_to_array(lesson_tsv) FROM agent_loop.reflections
            WHERE owner = $1::regrole ORDER BY task_id DESC LIMIT $2",
    types: &[OID, INT4],
};

/// The lexemes of each goal, in the goals' order, parsed as lessons' are.
pub static GOAL_LEXEMES: Sql = Sql {
    text: "SELECT tsvector_to_array(to_tsvector('english', g.goal))
             FROM unnest($1::text[]) WITH ORDINALITY AS g (goal, n) ORDER BY g.n",
    types: &[TEXT_ARRAY],
};

/// The log of a task. The perceive row names its recalled lessons by their key in reflections
/// ("lessons"); "recalled" gives back those that still exist, as [task_id, id, lesson].
pub static LOAD_STEPS: Sql = Sql {
    text: "SELECT s.phase::text AS phase, s.kind::text AS kind,
                  CASE WHEN s.content ? 'lessons' THEN s.content || jsonb_build_object('recalled',
                    (SELECT coalesce(jsonb_agg(jsonb_build_array(r.task_id, r.id, r.lesson)
                                               ORDER BY r.n), '[]')
                       FROM agent_loop._recalled_lessons(s.owner, s.content->'lessons') r
                      WHERE r.lesson IS NOT NULL))
                  ELSE s.content END AS content
             FROM agent_loop.steps s WHERE s.task_id = $1 ORDER BY s.n",
    types: &[INT8],
};

pub static INSERT_STEP: Sql = Sql {
    text: "INSERT INTO agent_loop.steps
                  (task_id, n, turn, owner, phase, kind, content, input_tokens, cached_tokens,
                   output_tokens, reasoning_tokens, cost, latency_ms)
           VALUES ($1, $2, $3, $4::regrole, $5::agent_loop.step_phase, $6::agent_loop.step_kind, $7,
                   $8, $9, $10, $11, $12::numeric, $13)",
    types: &[
        INT8, INT4, INT4, OID, TEXT, TEXT, JSONB, INT4, INT4, INT4, INT4, FLOAT8, INT4,
    ],
};

/// Pending guidance is read with this statement's snapshot: a message whose send() committed
/// before it is taken in by this step; one committed while this waits for the row (send()
/// holds a share lock on it until commit), or later, by the next step.
pub static LOCK_TASK: Sql = Sql {
    text: "SELECT cancel_requested_at IS NOT NULL AS cancel_requested,
                  EXISTS (SELECT FROM agent_loop.guidance g WHERE g.task_id = t.id)
                      AS guidance_pending
             FROM agent_loop.tasks t
            WHERE id = $1 AND status = 'running' AND lease_worker = $2 AND attempts = $3
              FOR UPDATE",
    types: &[INT8, INT4, INT4],
};

/// LOCK_TASK for a step that runs tools, and so most likely continues: it saves the progress
/// the model's answer brings (with the phase the task waits in next) as it locks the row, the
/// one write to the row such a step needs. Any other step that continues saves its progress
/// with it too, on the row it has locked. `$4` is the lease in seconds.
pub static LOCK_SAVING_PROGRESS: Sql = Sql {
    text: "UPDATE agent_loop.tasks t
              SET phase = 'decide', lease_until = now() + $4 * interval '1 second',
                  steps_done = $5, input_tokens = $6, cached_tokens = $7, output_tokens = $8,
                  reasoning_tokens = $9, cost = $10::numeric
            WHERE id = $1 AND status = 'running' AND lease_worker = $2 AND attempts = $3
        RETURNING cancel_requested_at IS NOT NULL AS cancel_requested,
                  EXISTS (SELECT FROM agent_loop.guidance g WHERE g.task_id = t.id)
                      AS guidance_pending",
    types: &[INT8, INT4, INT4, INT4, INT4, INT8, INT8, INT8, INT8, FLOAT8],
};

/// The task's unread messages from send(), oldest first; they become guidance steps.
pub static TAKE_GUIDANCE: Sql = Sql {
    text: "WITH taken AS (DELETE FROM agent_loop.guidance WHERE task_id = $1
                          RETURNING id, message)
           SELECT message FROM taken ORDER BY id",
    types: &[INT8],
};

// LOCK_SAVING_PROGRESS, FINISH and PARK take the task's progress as their last six parameters
// (steps_done, input, cached, output and reasoning tokens, cost): see `progress_args`.
// FINISH_IF_OURS takes the lease's two after them.

/// The final update of a task, with `$1` its id; `$guard` completes the WHERE clause.
macro_rules! finish {
    ($guard:literal) => {
        concat!(
            "UPDATE agent_loop.tasks
                SET status = $2::agent_loop.task_status, phase = 'reflect', finished_at = now(),
                    result = $3, error_code = $4, error_message = $5, steps_done = $6,
                    input_tokens = $7, cached_tokens = $8, output_tokens = $9,
                    reasoning_tokens = $10, cost = $11::numeric, lease_worker = NULL,
                    lease_until = NULL
              WHERE id = $1",
            $guard
        )
    };
}

const FINISH_TYPES: [PgOid; 11] = [
    INT8, TEXT, JSONB, TEXT, TEXT, INT4, INT8, INT8, INT8, INT8, FLOAT8,
];

/// On the row the step has locked.
pub static FINISH: Sql = Sql {
    text: finish!(""),
    types: &FINISH_TYPES,
};

/// For a step that has not locked the row: the update locks it, if the task is still this
/// worker's (`$12`, `$13`: worker pid and attempt), no cancel is pending and no guidance waits
/// (a message sent before the final answer is recorded gets a decide of its own). No row
/// returned: the step locks the row to learn which.
pub static FINISH_IF_OURS: Sql = Sql {
    text: finish!(
        " AND status = 'running' AND lease_worker = $12 AND attempts = $13
          AND cancel_requested_at IS NULL
          AND NOT EXISTS (SELECT FROM agent_loop.guidance g WHERE g.task_id = $1)
        RETURNING id"
    ),
    types: &[
        INT8, TEXT, JSONB, TEXT, TEXT, INT4, INT8, INT8, INT8, INT8, FLOAT8, INT4, INT4,
    ],
};

/// A call of a needs_approval tool, pending until the owner decides.
/// What is approved is the tool as it is now: its function and a digest of the function's
/// definition (see DECISIONS).
pub static REQUEST_APPROVAL: Sql = Sql {
    text: "INSERT INTO agent_loop.approvals
                  (task_id, call_id, owner, tool, arguments, function, function_digest)
           SELECT $1, $2, $3::regrole, $4, $5, t.function, agent_loop._function_digest(t.function)
             FROM (SELECT) one LEFT JOIN agent_loop.tools t ON t.name = $4
           ON CONFLICT (task_id, call_id) DO NOTHING",
    types: &[INT8, TEXT, OID, TEXT, TEXT],
};

/// The task waits (for decisions on its calls, or for its subtasks) without a worker: no
/// lease, not claimable.
pub static PARK: Sql = Sql {
    text: "UPDATE agent_loop.tasks
              SET status = $2::agent_loop.task_status, phase = 'act', lease_worker = NULL,
                  lease_until = NULL, steps_done = $3, input_tokens = $4, cached_tokens = $5,
                  output_tokens = $6, reasoning_tokens = $7, cost = $8::numeric
            WHERE id = $1",
    types: &[INT8, TEXT, INT4, INT8, INT8, INT8, INT8, FLOAT8],
};

/// Subtasks of a spawn_subtasks call: the parent's owner, model, tools (but this one: one
/// level deep), limits and priority, one per goal, in the order given.
pub static SPAWN: Sql = Sql {
    text: "INSERT INTO agent_loop.tasks
                  (owner, goal, model, tools, max_steps, token_budget, deadline, priority,
                   require_tool_use, parent_id, parent_call_id)
           SELECT p.owner, g.goal, p.model, array_remove(p.tools, 'spawn_subtasks'), p.max_steps,
                  p.token_budget, p.deadline, p.priority, p.require_tool_use, p.id, $2
             FROM agent_loop.tasks p, unnest($3::text[]) WITH ORDINALITY g(goal, i)
            WHERE p.id = $1
            ORDER BY g.i",
    types: &[INT8, TEXT, TEXT_ARRAY],
};

/// How many subtasks the task has started, and whether its owner is in agent_loop_admin (no
/// cap then).
pub static SUBTASKS_STARTED: Sql = Sql {
    text: "SELECT count(c.id)::int4, pg_catalog.pg_has_role(p.owner, 'agent_loop_admin', 'MEMBER')
             FROM agent_loop.tasks p LEFT JOIN agent_loop.tasks c ON c.parent_id = p.id
            WHERE p.id = $1 GROUP BY p.owner",
    types: &[INT8],
};

/// How the subtasks of a call ended, in the order they were asked for.
pub static SUBTASK_ENDS: Sql = Sql {
    text: "SELECT id, goal, status::text AS status, result->>'answer' AS answer,
                  CASE WHEN error_code IS NOT NULL THEN error_code || ': ' || error_message END
                      AS error
             FROM agent_loop.tasks WHERE parent_id = $1 AND parent_call_id = $2
            ORDER BY id",
    types: &[INT8, TEXT],
};

/// The decisions taken on a task's calls, for the step that resumes it.
/// `unchanged`: the tool is still the one that was approved (same function, same definition,
/// still needing approval); an approved call runs only then.
pub static DECISIONS: Sql = Sql {
    text: "SELECT a.call_id, a.decision = 'approved' AS approved,
                  a.decided_by::text AS decided_by, a.reason,
                  t.needs_approval IS TRUE
                  AND t.function IS NOT DISTINCT FROM a.function
                  AND agent_loop._function_digest(t.function) IS NOT DISTINCT FROM a.function_digest
                      AS tool_unchanged
             FROM agent_loop.approvals a
             LEFT JOIN agent_loop.tools t ON t.name = a.tool
            WHERE a.task_id = $1 AND a.decision IS NOT NULL",
    types: &[INT8],
};

pub static INSERT_REFLECTION: Sql = Sql {
    text: "INSERT INTO agent_loop.reflections (owner, task_id, outcome, lesson)
           VALUES ($1::regrole, $2, $3, $4)",
    types: &[OID, INT8, TEXT, TEXT],
};

/// Used after a step's transaction failed: the error gets its own step row and ends the task.
pub static FAIL_AFTER_ERROR: Sql = Sql {
    text: "WITH failed AS (
             UPDATE agent_loop.tasks
                SET status = 'failed', finished_at = now(), error_code = $5,
                    error_message = $4, lease_worker = NULL, lease_until = NULL
              WHERE id = $1 AND status = 'running' AND lease_worker = $2 AND attempts = $3
             RETURNING id, owner, steps_done)
           INSERT INTO agent_loop.steps (task_id, n, turn, owner, phase, kind, content)
           SELECT f.id, coalesce((SELECT max(n) FROM agent_loop.steps WHERE task_id = f.id), 0) + 1,
                  f.steps_done, f.owner, 'act', 'error',
                  jsonb_build_object('class', $5::text, 'message', $4)
             FROM failed f
           RETURNING task_id",
    types: &[INT8, INT4, INT4, TEXT, TEXT],
};

/// A claimed task that could not be prepared: its claim was rolled back with the error, so it
/// is queued again; it fails here, counting the attempt, with no step written.
pub static FAIL_UNPREPARED: Sql = Sql {
    text: "UPDATE agent_loop.tasks
              SET status = 'failed', attempts = attempts + 1,
                  started_at = coalesce(started_at, now()), finished_at = now(),
                  error_code = $3, error_message = $2
            WHERE id = $1 AND status = 'queued' AND cancel_requested_at IS NULL
        RETURNING id",
    types: &[INT8, TEXT, TEXT],
};

/// The schema-qualified name of `pg_prewarm(regclass)`, when the extension is installed.
pub const PREWARM_FUNCTION: &str = "SELECT format('%I.pg_prewarm', n.nspname)
       FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
      WHERE e.extname = 'pg_prewarm'";

/// Prewarms the hot relations if they fit in half of shared_buffers (more would only evict
/// each other); `{pg_prewarm}` is replaced by the function's qualified name.
pub const PREWARM: &str = "WITH hot AS (SELECT rel FROM agent_loop._hot_relations() rel)
           SELECT CASE WHEN sum(pg_catalog.pg_relation_size(rel))
                            <= pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers')) / 2
                       THEN (SELECT sum({pg_prewarm}(rel))::int8 FROM hot) END
             FROM hot";
