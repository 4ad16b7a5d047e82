-- agent_loop: tables, row-level security and grants.
--
-- Tables are the source of truth. The worker (a superuser background process) is their only
-- writer for task state and steps; users read through row-level security, which shows a role
-- only its own tasks, steps and reflections (members of agent_loop_admin see everything).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agent_loop_admin') THEN
        CREATE ROLE agent_loop_admin NOLOGIN;
    END IF;
END
$$;

CREATE TYPE task_status AS ENUM
    ('queued', 'running', 'waiting_approval', 'waiting_subtasks', 'succeeded', 'failed',
     'cancelled');
COMMENT ON TYPE task_status IS
    'Lifecycle of a task: queued -> running -> succeeded | failed | cancelled. A running task '
    'whose model calls a needs_approval tool waits in waiting_approval, one that started '
    'subtasks in waiting_subtasks; either is queued again when nothing is pending.';

-- ---------------------------------------------------------------------------------------------
CREATE TABLE models (
    name            text PRIMARY KEY,
    -- One of agent_loop._providers(), the core's registry (the check is added in api.sql,
    -- once that function exists).
    provider        text NOT NULL DEFAULT 'openai_chat',
    base_url        text NOT NULL CHECK (base_url ~ '^https?://'),
    model           text NOT NULL,
    api_key_env     text,
    request_timeout interval NOT NULL DEFAULT '60 seconds'
                    CHECK (request_timeout > '0'::interval),
    max_concurrency int NOT NULL DEFAULT 16 CHECK (max_concurrency >= 1),
    options         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    context_window  int CHECK (context_window >= 256),
    input_price     numeric CHECK (input_price >= 0),
    cached_input_price numeric CHECK (cached_input_price >= 0),
    output_price    numeric CHECK (output_price >= 0),
    writes_summaries boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE models IS
    'Model endpoints tasks may use. API keys are never stored here: api_key_env names an '
    'environment variable of the server, or the key comes from agent_loop.api_keys.';
COMMENT ON COLUMN models.provider IS
    'Wire protocol: openai_chat (OpenAI Chat Completions and compatible servers: Ollama, vLLM, '
    'llama.cpp, LM Studio), openai_responses (OpenAI Responses) or anthropic (Anthropic Messages).';
COMMENT ON COLUMN models.base_url IS 'Endpoint base, e.g. https://api.openai.com/v1 or http://localhost:11434/v1.';
COMMENT ON COLUMN models.model IS 'Model name sent to the endpoint.';
COMMENT ON COLUMN models.api_key_env IS 'Name of the server environment variable holding the API key (not the key).';
COMMENT ON COLUMN models.request_timeout IS 'Deadline for one HTTP attempt.';
COMMENT ON COLUMN models.max_concurrency IS 'Requests in flight to this model at once, per worker.';
COMMENT ON COLUMN models.options IS 'Extra request body fields, e.g. {"temperature": 0} or {"max_tokens": 8192}.';
COMMENT ON COLUMN models.context_window IS
    'Tokens the model accepts. When a task''s prompt passes 75% of it, older steps are '
    'summarised into a compaction step; NULL never compacts.';
COMMENT ON COLUMN models.writes_summaries IS
    'Whether the model writes its tasks'' compaction summaries itself (one short request, at '
    'most 200 tokens, recorded with its tokens and cost on the compaction step); otherwise, and '
    'when that request fails, the summary is a structured one written without a model call.';
COMMENT ON COLUMN models.input_price IS
    'USD per million input tokens; with output_price it gives each step its cost. NULL: unpriced.';
COMMENT ON COLUMN models.cached_input_price IS
    'USD per million input tokens served from the provider''s prompt cache; NULL: input_price.';
COMMENT ON COLUMN models.output_price IS
    'USD per million output tokens, hidden reasoning included. NULL: unpriced.';

-- ---------------------------------------------------------------------------------------------
CREATE TABLE tools (
    name            text PRIMARY KEY CHECK (name ~ '^[a-zA-Z0-9_-]{1,64}$'),
    function        regprocedure UNIQUE,
    description     text NOT NULL,
    parameters      jsonb NOT NULL,
    signature       jsonb NOT NULL DEFAULT '[]',
    returns_set     boolean NOT NULL DEFAULT false,
    returns_void    boolean NOT NULL DEFAULT false,
    needs_approval  boolean NOT NULL DEFAULT false,
    registered_by   regrole NOT NULL DEFAULT current_user::regrole,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The built-in tools (agent_loop_core::tools::Builtin) and only they have no function.
    CONSTRAINT tools_builtin CHECK ((function IS NULL) = (name IN ('sql_query', 'spawn_subtasks')))
);
COMMENT ON TABLE tools IS
    'Tools a task may use. A tool is a SQL function run as the task''s owner; function is NULL '
    'for the built-in sql_query and spawn_subtasks.';
COMMENT ON COLUMN tools.parameters IS 'JSON Schema of the arguments, derived from the function signature.';
COMMENT ON COLUMN tools.signature IS 'Input arguments: [{name, named, type, has_default}].';
COMMENT ON COLUMN tools.needs_approval IS
    'A call of this tool waits for approve() or reject() before it runs; the task waits in '
    'status waiting_approval without holding a worker.';
COMMENT ON COLUMN tools.registered_by IS 'Role that registered the tool (the function''s owner or an agent_loop_admin).';

INSERT INTO tools (name, function, description, parameters, registered_by)
VALUES ('sql_query', NULL,
        'Run one read-only SQL query (SELECT, WITH, VALUES) in the database with your '
        'privileges and get the rows back as JSON. Rows beyond a limit are cut off.',
        '{"type": "object", "properties": {"query": {"type": "string", "description": "one SQL query"}},
          "required": ["query"], "additionalProperties": false}',
        'agent_loop_admin');
INSERT INTO tools (name, function, description, parameters, registered_by)
VALUES ('spawn_subtasks', NULL,
        'Split the work into independent subtasks that run in parallel, each as a task of its '
        'own with your tools (except this one) and limits. You get their answers back as this '
        'call''s result once all have ended. Each goal must say everything its subtask needs.',
        '{"type": "object", "properties": {"goals": {"type": "array", "minItems": 1, "maxItems": 8,
          "items": {"type": "string"}, "description": "one self-contained goal per subtask"}},
          "required": ["goals"], "additionalProperties": false}',
        'agent_loop_admin');

-- ---------------------------------------------------------------------------------------------
-- Hot columns first and narrow; the row is updated once per step, and fillfactor leaves room
-- for those updates to stay HOT (no indexed column changes during a step). The claim and the
-- final update change status, which index predicates name, so they are never HOT. A queue
-- table with retention stays small, so the room costs little (bench/HISTORY.md).
CREATE TABLE tasks (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner               regrole NOT NULL DEFAULT current_user::regrole,
    -- What claims, steps and the end change, side by side: an update on the same page logs
    -- only the bytes between the first and the last that changed.
    status              task_status NOT NULL DEFAULT 'queued',
    attempts            int NOT NULL DEFAULT 0,
    lease_worker        int,
    started_at          timestamptz,
    lease_until         timestamptz,
    phase               text,
    steps_done          int NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    cost                numeric NOT NULL DEFAULT 0,
    finished_at         timestamptz,
    error_code          text,
    error_message       text,
    result              jsonb,
    -- Set once.
    cancel_requested_at timestamptz,
    max_steps           int NOT NULL DEFAULT 10 CHECK (max_steps >= 1),
    priority            int NOT NULL DEFAULT 0,
    token_budget        bigint CHECK (token_budget > 0),
    deadline            timestamptz,
    run_after           timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- No foreign key: its check locks the model's row FOR KEY SHARE at every submit, a WAL
    -- record each and, with concurrent submitters, a multixact (551 -> 405 bytes of WAL per
    -- submit, 8 pgbench clients). models_in_use guards the rows instead.
    model               text NOT NULL,
    tools               text[] NOT NULL DEFAULT '{}',
    idempotency_key     text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    output_schema       jsonb CHECK (jsonb_typeof(output_schema) = 'object'),
    accept_if           text,
    -- NULL: required when the task has tools.
    require_tool_use    boolean,
    parent_id           bigint,
    parent_call_id      text,
    goal                text NOT NULL CHECK (goal <> '')
) WITH (fillfactor = 50,
        -- A queue table: every claim and step leaves a dead version and an index entry that
        -- claims must step over, so vacuum it after 2% of its rows changed, not the default 20%.
        autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- By owner: a claim visits each owner with queued tasks (a skip scan over this index) and
-- takes from each in turn, so one role's flood cannot push back another role's first task.
CREATE INDEX tasks_claimable ON tasks (owner, priority DESC, run_after, id)
    WHERE status = 'queued' AND cancel_requested_at IS NULL;
CREATE INDEX tasks_running ON tasks (id) WHERE status = 'running';
-- The worker looks for pending cancels at every wake-up; without this it read the whole table.
CREATE INDEX tasks_cancel_pending ON tasks (id)
    WHERE cancel_requested_at IS NOT NULL
      AND status IN ('queued', 'running', 'waiting_approval', 'waiting_subtasks');
-- No index on owner: row-level security's `owner = current_user OR pg_has_role(...)` cannot
-- use one, and each would cost an entry per non-HOT update (claim, finish): 4 of a 3-step
-- task's 20 index entries.
CREATE INDEX tasks_children ON tasks (parent_id) WHERE parent_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_idempotency ON tasks (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

COMMENT ON TABLE tasks IS 'One row per task: its goal, limits, state, lease, usage and outcome.';
COMMENT ON COLUMN tasks.model IS
    'Name of the model (agent_loop.models) the task calls; a model is neither renamed nor '
    'deleted while a task that has not ended uses it.';

-- What the foreign key from tasks.model did, checked when a model changes (rarely) instead of
-- at every submit: a model in use by a task that has not ended keeps its name and its row.
-- Not SECURITY DEFINER: whoever may change models (agent_loop_admin, a superuser) sees every
-- task already.
CREATE FUNCTION _model_in_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_SCHEMA <> 'agent_loop' OR TG_TABLE_NAME <> 'models' THEN
        RAISE EXCEPTION 'not an agent_loop table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.name = OLD.name THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT FROM agent_loop.tasks t
                WHERE t.model = OLD.name
                  AND t.status IN ('queued', 'running', 'waiting_approval', 'waiting_subtasks')) THEN
        RAISE EXCEPTION 'model "%" is used by tasks that have not ended', OLD.name
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'wait for them to end, or cancel them';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
REVOKE EXECUTE ON FUNCTION _model_in_use() FROM PUBLIC;
CREATE TRIGGER models_in_use BEFORE UPDATE OF name OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION _model_in_use();
COMMENT ON COLUMN tasks.owner IS 'Role that submitted the task; its tools run with this role''s privileges.';
COMMENT ON COLUMN tasks.phase IS 'Loop phase the task is in or ended in: perceive, decide, act, reflect.';
COMMENT ON COLUMN tasks.steps_done IS 'Decide phases (successful model calls) so far.';
COMMENT ON COLUMN tasks.max_steps IS 'The task fails with max_steps_exceeded when this many steps end without an answer.';
COMMENT ON COLUMN tasks.token_budget IS 'Total input + output tokens allowed; NULL is unlimited.';
COMMENT ON COLUMN tasks.deadline IS 'No step starts after this time; the task then fails with deadline_exceeded.';
COMMENT ON COLUMN tasks.run_after IS 'The task is not claimed before this time.';
COMMENT ON COLUMN tasks.attempts IS 'How often a worker has claimed the task (more than once after a crash).';
COMMENT ON COLUMN tasks.lease_worker IS 'PID of the worker holding the task while it runs.';
COMMENT ON COLUMN tasks.lease_until IS 'The lease expires then unless renewed; an expired lease is reclaimed.';
COMMENT ON COLUMN tasks.cancel_requested_at IS 'Set by cancel(); the worker ends the task before its next step.';
COMMENT ON COLUMN tasks.cost IS
    'What the task''s model calls cost, in USD at its model''s prices (0 when it has none).';
COMMENT ON COLUMN tasks.error_code IS 'Why the task failed: max_steps_exceeded, model_<class>, deadline_exceeded, cancelled, tool_timeout, invalid_task, ...';
COMMENT ON COLUMN tasks.result IS
    'On success: {"answer": text}, plus "output": the answer as JSON when output_schema was given.';
COMMENT ON COLUMN tasks.output_schema IS
    'JSON Schema the final answer must match (structured output); a mismatch goes back to the model.';
COMMENT ON COLUMN tasks.accept_if IS
    'Boolean SQL expression a final answer must pass before it is accepted: $1 is the answer '
    'text, $2 the structured output (jsonb). Runs read-only with the owner''s privileges.';
COMMENT ON COLUMN tasks.require_tool_use IS
    'Whether a final answer must rest on what a tool returned: until a tool call has a result '
    '(data or an error to report), the model is asked to call one (tool_choice "required") and '
    'an answer given before is sent back; the third such answer fails the task '
    '(answer_without_data). NULL means true when the task has tools.';
COMMENT ON COLUMN tasks.parent_id IS
    'For a subtask: the task whose spawn_subtasks call started it (no foreign key: either may '
    'be pruned first).';
COMMENT ON COLUMN tasks.parent_call_id IS 'For a subtask: the parent''s call that started it.';
COMMENT ON COLUMN tasks.idempotency_key IS 'A repeated submit with the same key (per owner) returns the existing task.';

-- ---------------------------------------------------------------------------------------------
-- Phase and kind are enums: 4 bytes each instead of up to 12 of text, and no CHECK to
-- evaluate at every insert.
CREATE TYPE step_phase AS ENUM ('perceive', 'decide', 'act', 'verify', 'reflect');
COMMENT ON TYPE step_phase IS 'The loop phase that wrote a step row.';
CREATE TYPE step_kind AS ENUM
    ('message', 'tool_call', 'tool_result', 'verification', 'reflection', 'compaction', 'error');
COMMENT ON TYPE step_kind IS 'What a step row holds; see the comment on steps.kind.';

-- Append-only. No foreign key: only the worker inserts here, in the same transaction that
-- locks the task row, and the key check would cost a row lock per step.
CREATE TABLE steps (
    task_id          bigint NOT NULL,
    n                int NOT NULL,
    turn             int NOT NULL,
    owner            regrole NOT NULL,
    phase            step_phase NOT NULL,
    kind             step_kind NOT NULL,
    content          jsonb NOT NULL,
    input_tokens     int,
    cached_tokens    int,
    output_tokens    int,
    reasoning_tokens int,
    cost             numeric,
    latency_ms       int,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, n)
);
COMMENT ON TABLE steps IS
    'The append-only log of each task: every message, tool call, tool result, error and '
    'reflection. A task can be resumed from it and its task row (the goal is not repeated '
    'in the log: its first row names the lessons recalled for it, content->''lessons'', by '
    'their key [task_id, id] in reflections).';
COMMENT ON COLUMN steps.n IS 'Position in the task''s log, from 1.';
COMMENT ON COLUMN steps.turn IS 'The decide step the row belongs to (0 = before the first model call).';
COMMENT ON COLUMN steps.kind IS
    'message (goal, guidance, reasoning or assistant text: content->>''role''), tool_call, '
    'tool_result, verification, reflection (a lesson at the end, or a revised plan mid-task), '
    'compaction or error.';
COMMENT ON COLUMN steps.input_tokens IS 'Model usage, on the first row written for a model call.';
COMMENT ON COLUMN steps.cost IS
    'The model call''s cost in USD at the model''s prices then; on the same row as its usage.';
COMMENT ON COLUMN steps.latency_ms IS 'Model call time including retries, or tool run time.';

-- ---------------------------------------------------------------------------------------------
CREATE TABLE reflections (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    owner      regrole NOT NULL,
    task_id    bigint NOT NULL,
    outcome    text NOT NULL,
    lesson     text NOT NULL,
    -- Lexemes without their positions: recall and forget() match words (OR and AND queries,
    -- never phrases), and a one-sentence lesson rarely repeats one. Half the size, half the
    -- WAL of the column, and ts_rank has less to read. Nor the words of the lesson's template
    -- (reflection::lesson), which every lesson has: they rank no lesson above another, and
    -- a goal that used one matched every lesson, all of which recall then ranked.
    lesson_tsv tsvector GENERATED ALWAYS AS (
        ts_delete(strip(to_tsvector('english', lesson)),
                  '{goal,succeed,fail,step,use,tool,answer}'::text[])) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Recall ranks the lessons of the owner's latest tasks (agent_loop.memory_window) and
    -- trace() finds a task's lesson, and a task's log names the lessons it recalled by
    -- (task_id, id), all through this key: one index, where a key on id alone
    -- and one on (owner, task_id) cost an entry each per lesson. A full-text index would go
    -- unused and cost 425 bytes of WAL per lesson (its pending-list metapage).
    PRIMARY KEY (owner, task_id, id)
);
COMMENT ON TABLE reflections IS
    'Lessons written when tasks end (a retried task can end twice; trace() shows each after '
    'the step that ended the task); the most relevant ones of the same owner (full-text rank '
    'against the goal) are recalled into the perceive phase of later tasks, whose logs name '
    'them by (task_id, id): a lesson deleted with forget() leaves those tasks'' prompts too.';

-- ---------------------------------------------------------------------------------------------
-- Messages sent to running tasks with send(); the worker moves each into the task's log (as a
-- guidance step) in the step transaction that follows, and deletes it there.
CREATE TABLE guidance (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner      regrole NOT NULL DEFAULT current_user::regrole,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX guidance_task ON guidance (task_id, id);
COMMENT ON TABLE guidance IS
    'Messages sent with send() that the task has not taken in yet; each becomes a guidance '
    'step at the task''s next step.';

-- ---------------------------------------------------------------------------------------------
-- Calls of needs_approval tools. The worker inserts a row per call and parks the task; the
-- owner (or an agent_loop_admin) decides with approve() / reject(), or by updating decision
-- and reason. The last decision re-queues the task, and its next step runs the approved calls.
CREATE TABLE approvals (
    task_id      bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    call_id      text NOT NULL,
    owner        regrole NOT NULL,
    tool         text NOT NULL,
    arguments    text NOT NULL,
    -- What is approved: the tool's function and a digest of its definition when the call
    -- began waiting. A call whose tool changed since is not run (see DECISIONS).
    function     regprocedure,
    function_digest text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    decision     text CHECK (decision IN ('approved', 'rejected')),
    reason       text CHECK (octet_length(reason) <= 65536),
    decided_by   regrole,
    decided_at   timestamptz,
    PRIMARY KEY (task_id, call_id)
);
CREATE INDEX approvals_pending ON approvals (task_id) WHERE decision IS NULL;
COMMENT ON TABLE approvals IS
    'Tool calls that need a human''s decision before they run, and the decisions taken.';
COMMENT ON COLUMN approvals.arguments IS 'The arguments as the model wrote them (JSON text).';
COMMENT ON COLUMN approvals.function IS
    'The tool''s function when the call began waiting; the approval is for it alone.';
COMMENT ON COLUMN approvals.function_digest IS
    'md5 of that function''s definition then (body, language, owner, settings, security). If '
    'the function, its definition or the tool''s needs_approval flag changed by the time the '
    'call would run, it does not run: the model is told to call it again, which asks again.';
COMMENT ON COLUMN approvals.decision IS 'NULL while pending; approved or rejected, once.';
COMMENT ON COLUMN approvals.reason IS 'Why, for a rejection: the model reads it as the call''s result.';

-- A digest of what a function does and with whose rights: an approval is for the function as
-- it was when the call began waiting (REQUEST_APPROVAL, DECISIONS in src/store/sql.rs).
CREATE FUNCTION _function_digest(function regprocedure) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(concat_ws(E'\x1f', p.prosrc, p.probin, p.prolang::text, p.proowner::text,
                         p.prosecdef::text, p.proconfig::text, p.provolatile::text,
                         p.proretset::text, p.prorettype::text, p.proargtypes::text))
      FROM pg_proc p WHERE p.oid = $1
$$;
COMMENT ON FUNCTION _function_digest IS
    'Internal: md5 of a function''s definition (body, language, owner, settings, security, '
    'signature), which an approval is bound to.';

-- Stamps who decided and refuses a second decision or one on a task that no longer waits
-- (or whose cancel was requested).
CREATE FUNCTION _approval_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_SCHEMA <> 'agent_loop' OR TG_TABLE_NAME <> 'approvals' THEN
        RAISE EXCEPTION 'not an agent_loop table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.decision IS NOT NULL THEN
        RAISE EXCEPTION 'call % of task % was already %', OLD.call_id, OLD.task_id, OLD.decision
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NEW.decision IS NULL THEN
        RAISE EXCEPTION 'a decision is approved or rejected' USING ERRCODE = 'not_null_violation';
    END IF;
    -- A cancel already asked for wins, whether or not the worker has ended the task yet.
    IF NOT EXISTS (SELECT FROM agent_loop.tasks t
                    WHERE t.id = OLD.task_id AND t.status = 'waiting_approval'
                      AND t.cancel_requested_at IS NULL) THEN
        RAISE EXCEPTION 'task % is not waiting for approval', OLD.task_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'it has ended, or its cancel was requested';
    END IF;
    NEW.decided_by := current_user::regrole;
    NEW.decided_at := now();
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION _approval_check() FROM PUBLIC;
CREATE TRIGGER approvals_check BEFORE UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION _approval_check();

-- A waiting task moves on when what it waits for is settled: to waiting_subtasks when its
-- calls are decided but subtasks still run, to queued when nothing is pending. The row lock
-- orders concurrent decisions and subtask ends: whichever commits last sees nothing pending.
-- A task with a cancel pending is left to the worker, which ends it.
CREATE FUNCTION _resume_if_settled(task_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM FROM agent_loop.tasks t
     WHERE t.id = _resume_if_settled.task_id AND t.cancel_requested_at IS NULL
       AND t.status IN ('waiting_approval', 'waiting_subtasks')
       FOR UPDATE;
    IF NOT FOUND OR EXISTS (SELECT FROM agent_loop.approvals a
                             WHERE a.task_id = _resume_if_settled.task_id AND a.decision IS NULL) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM agent_loop.tasks c
                WHERE c.parent_id = _resume_if_settled.task_id
                  AND c.status NOT IN ('succeeded', 'failed', 'cancelled')) THEN
        UPDATE agent_loop.tasks SET status = 'waiting_subtasks'
         WHERE id = _resume_if_settled.task_id AND status <> 'waiting_subtasks';
        RETURN;
    END IF;
    UPDATE agent_loop.tasks SET status = 'queued', run_after = now()
     WHERE id = _resume_if_settled.task_id;
    PERFORM agent_loop._wake_worker();
END
$$;
REVOKE EXECUTE ON FUNCTION _resume_if_settled(bigint) FROM PUBLIC;

-- Users may not change a task's status; this trigger function does it for them when the last
-- pending call of a task is decided (on approvals) or its last subtask ends (on tasks).
-- SECURITY DEFINER, and executable by nobody else: it cannot be attached to another table to
-- re-queue tasks at will.
CREATE FUNCTION _resume_waiting_task() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_SCHEMA = 'agent_loop' AND TG_TABLE_NAME = 'approvals' THEN
        PERFORM agent_loop._resume_if_settled(NEW.task_id);
    ELSIF TG_TABLE_SCHEMA = 'agent_loop' AND TG_TABLE_NAME = 'tasks' THEN
        PERFORM agent_loop._resume_if_settled(NEW.parent_id);
    ELSE
        RAISE EXCEPTION 'not an agent_loop table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION _resume_waiting_task() FROM PUBLIC;
CREATE TRIGGER approvals_resume AFTER UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION _resume_waiting_task();
-- Only the worker (and an admin) changes statuses; the condition keeps other updates cheap.
CREATE TRIGGER tasks_subtask_ended AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL
                       AND NEW.status IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION _resume_waiting_task();

-- ---------------------------------------------------------------------------------------------
-- Privileges and row-level security.
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE reflections ENABLE ROW LEVEL SECURITY;
ALTER TABLE tools ENABLE ROW LEVEL SECURITY;
ALTER TABLE guidance ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals ENABLE ROW LEVEL SECURITY;

CREATE POLICY own_tasks ON tasks
    USING (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'))
    WITH CHECK (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'));
CREATE POLICY own_steps ON steps
    USING (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'));
CREATE POLICY own_reflections ON reflections
    USING (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'));
-- The foreign key ignores row-level security: without the EXISTS, a role could queue guidance
-- for another role's task (and learn from the key's error which task ids exist). The subquery
-- sees only the tasks the inserting role may see.
CREATE POLICY own_guidance ON guidance
    USING (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'))
    WITH CHECK (owner = current_user::regrole
                AND EXISTS (SELECT FROM agent_loop.tasks t
                             WHERE t.id = task_id AND t.owner = current_user::regrole));
CREATE POLICY own_approvals ON approvals
    USING (owner = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'));
CREATE POLICY read_tools ON tools FOR SELECT USING (true);
CREATE POLICY manage_tools ON tools
    USING (registered_by = current_user::regrole OR pg_has_role('agent_loop_admin', 'MEMBER'))
    WITH CHECK (pg_has_role('agent_loop_admin', 'MEMBER')
                OR (registered_by = current_user::regrole AND function IS NOT NULL
                    AND pg_has_role((SELECT proowner FROM pg_proc WHERE oid = function), 'USAGE')));

GRANT USAGE ON SCHEMA agent_loop TO PUBLIC;
GRANT SELECT ON models, tools, tasks, steps, reflections, guidance, approvals TO PUBLIC;
GRANT UPDATE (decision, reason) ON approvals TO PUBLIC;
GRANT INSERT (task_id, message) ON guidance TO PUBLIC;
-- Users create tasks only through the columns submit() sets; state columns are the worker's.
GRANT INSERT (goal, model, tools, max_steps, token_budget, deadline, priority, run_after,
              metadata, idempotency_key, output_schema, accept_if, require_tool_use)
    ON tasks TO PUBLIC;
GRANT UPDATE (cancel_requested_at) ON tasks TO PUBLIC;
-- No table-level UPDATE, DELETE or TRUNCATE for PUBLIC anywhere: any of them lets a role
-- LOCK TABLE in ACCESS EXCLUSIVE mode, which would stall the worker and every submit.
-- Column privileges do not count for LOCK TABLE. forget() and unregister_tool() delete for
-- their callers (src/api/manage.rs).
GRANT INSERT (name, function, description, parameters, signature, returns_set, returns_void,
              needs_approval),
      UPDATE (function, description, parameters, signature, returns_set, returns_void,
              needs_approval) ON tools TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON models TO agent_loop_admin;
GRANT ALL ON tasks, steps, reflections, guidance, approvals TO agent_loop_admin;
