-- agent_loop: the SQL API. Every function runs with the caller's privileges; row-level
-- security on the tables decides what each role may see and touch.

-- The wire formats this build speaks, from the core's registry: a provider is one Rust file and
-- one line there, and nothing here names it.
ALTER TABLE models ADD CONSTRAINT models_provider_known
    CHECK (provider = ANY (agent_loop._providers()));

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION add_model(
    name            text,
    base_url        text,
    model           text,
    provider        text DEFAULT 'openai_chat',
    api_key_env     text DEFAULT NULL,
    request_timeout interval DEFAULT '60 seconds',
    max_concurrency int DEFAULT 16,
    options         jsonb DEFAULT '{}',
    context_window  int DEFAULT NULL,
    input_price     numeric DEFAULT NULL,
    output_price    numeric DEFAULT NULL,
    cached_input_price numeric DEFAULT NULL,
    writes_summaries boolean DEFAULT false
) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
BEGIN
    IF add_model.provider IS NULL OR add_model.provider <> ALL (agent_loop._providers()) THEN
        RAISE EXCEPTION 'unknown provider "%"', add_model.provider
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'supported providers: ' || array_to_string(agent_loop._providers(), ', ');
    END IF;
    IF add_model.context_window IS NOT NULL AND add_model.context_window < 256 THEN
        RAISE EXCEPTION 'context_window must be at least 256 tokens, not %', add_model.context_window
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF least(add_model.input_price, add_model.output_price, add_model.cached_input_price) < 0 THEN
        RAISE EXCEPTION 'prices must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (add_model.input_price IS NULL) <> (add_model.output_price IS NULL) THEN
        RAISE EXCEPTION 'give both input_price and output_price, or neither'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF add_model.base_url IS NULL OR add_model.base_url !~ '^https?://' THEN
        RAISE EXCEPTION 'base_url must start with http:// or https://'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF add_model.api_key_env IS NOT NULL AND add_model.api_key_env !~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
        RAISE EXCEPTION 'api_key_env must be the name of an environment variable, not a key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO agent_loop.models AS m
           (name, provider, base_url, model, api_key_env, request_timeout, max_concurrency,
            options, context_window, input_price, output_price, cached_input_price,
            writes_summaries)
    VALUES (add_model.name, add_model.provider, add_model.base_url, add_model.model,
            add_model.api_key_env, add_model.request_timeout, add_model.max_concurrency,
            coalesce(add_model.options, '{}'), add_model.context_window, add_model.input_price,
            add_model.output_price, add_model.cached_input_price,
            coalesce(add_model.writes_summaries, false))
    ON CONFLICT ON CONSTRAINT models_pkey DO UPDATE
       SET provider = EXCLUDED.provider, base_url = EXCLUDED.base_url, model = EXCLUDED.model,
           api_key_env = EXCLUDED.api_key_env, request_timeout = EXCLUDED.request_timeout,
           max_concurrency = EXCLUDED.max_concurrency, options = EXCLUDED.options,
           context_window = EXCLUDED.context_window, input_price = EXCLUDED.input_price,
           output_price = EXCLUDED.output_price, cached_input_price = EXCLUDED.cached_input_price,
           writes_summaries = EXCLUDED.writes_summaries;
    RETURN add_model.name;
END
$$;
COMMENT ON FUNCTION add_model IS
    'Adds or replaces a model endpoint. Needs agent_loop_admin. provider is the wire protocol '
    '(openai_chat, openai_responses, anthropic); changing it changes nothing else, running '
    'tasks included. The API key is read at call time from the server environment variable '
    'api_key_env, or from agent_loop.api_keys. context_window (tokens) turns on compaction; '
    'with writes_summaries the model writes its summaries. '
    'Prices are USD per million tokens (cached_input_price defaults to input_price); with '
    'them each step records its cost and each task its total.';

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION unregister_tool(name text) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, agent_loop AS $$
    SELECT agent_loop._delete_tool(unregister_tool.name)
$$;
COMMENT ON FUNCTION unregister_tool IS
    'Removes a registered tool (not the built-in sql_query). Tasks already running keep it.';

-- ---------------------------------------------------------------------------------------------
-- Every new task, however it is inserted (submit(), a direct INSERT, a subtask the worker
-- starts), passes these checks, as its owner: a task the worker cannot run, or one that would
-- take more than its owner may, never reaches the queue. Generic plans: a custom plan of the
-- checks over the tools array costs more to make than to run (bench/HISTORY.md).
CREATE FUNCTION _check_new_task() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    missing   text;
    forbidden text;
    ceiling   int := coalesce(nullif(current_setting('agent_loop.max_priority', true), '')::int, 100);
BEGIN
    IF TG_TABLE_SCHEMA <> 'agent_loop' OR TG_TABLE_NAME <> 'tasks' THEN
        RAISE EXCEPTION 'not an agent_loop table' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.goal IS NULL OR btrim(NEW.goal) = '' THEN
        RAISE EXCEPTION 'goal must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(NEW.goal) > 1048576 THEN
        RAISE EXCEPTION 'goal is % bytes; the limit is 1 MB', octet_length(NEW.goal)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF jsonb_typeof(NEW.metadata) <> 'object' OR octet_length(NEW.metadata::text) > 65536 THEN
        RAISE EXCEPTION 'metadata must be a JSON object of at most 64 kB'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM agent_loop.models m WHERE m.name = NEW.model) THEN
        RAISE EXCEPTION 'unknown model "%"', NEW.model
            USING ERRCODE = 'undefined_object', HINT = 'models are added with agent_loop.add_model()';
    END IF;
    IF NEW.max_steps IS NULL OR NEW.max_steps < 1 THEN
        RAISE EXCEPTION 'max_steps must be at least 1, not %', coalesce(NEW.max_steps::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.token_budget IS NOT NULL AND NEW.token_budget < 1 THEN
        RAISE EXCEPTION 'token_budget must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.priority > ceiling AND NOT pg_has_role(NEW.owner, 'agent_loop_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'priority % is above agent_loop.max_priority (%)', NEW.priority, ceiling
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'higher priorities are for members of agent_loop_admin';
    END IF;
    IF NEW.output_schema IS NOT NULL THEN
        IF jsonb_typeof(NEW.output_schema) <> 'object' OR octet_length(NEW.output_schema::text) > 65536 THEN
            RAISE EXCEPTION 'output_schema must be a JSON Schema object of at most 64 kB'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF agent_loop._json_depth(NEW.output_schema::text) > 32 THEN
            RAISE EXCEPTION 'output_schema nests % levels deep; the limit is 32',
                            agent_loop._json_depth(NEW.output_schema::text)
                USING ERRCODE = 'program_limit_exceeded';
        END IF;
    END IF;
    IF NEW.accept_if IS NOT NULL THEN
        -- Parsed and planned now, with the owner's privileges, so a typo fails the insert.
        PERFORM agent_loop._prepare_check(NEW.accept_if);
    END IF;
    SELECT string_agg(format('"%s"', t), ', ') INTO missing
      FROM unnest(NEW.tools) t
     WHERE NOT EXISTS (SELECT FROM agent_loop.tools x WHERE x.name = t);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'unknown tool %', missing
            USING ERRCODE = 'undefined_object',
                  HINT = 'tools are registered with agent_loop.register_tool(); see agent_loop.tools';
    END IF;
    SELECT string_agg(format('"%s"', x.name), ', ') INTO forbidden
      FROM agent_loop.tools x
     WHERE x.name = ANY (NEW.tools) AND x.function IS NOT NULL
       AND NOT has_function_privilege(NEW.owner, x.function, 'EXECUTE');
    IF forbidden IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied for tool %', forbidden
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Tools run with the task owner''s privileges, which do not include executing this function.';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION _check_new_task() FROM PUBLIC;
CREATE TRIGGER tasks_check_new BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION _check_new_task();

CREATE FUNCTION submit(
    goal            text,
    model           text DEFAULT NULL,
    tools           text[] DEFAULT '{}',
    max_steps       int DEFAULT 10,
    timeout         interval DEFAULT NULL,
    metadata        jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    token_budget    bigint DEFAULT NULL,
    priority        int DEFAULT 0,
    run_after       timestamptz DEFAULT NULL,
    output_schema   jsonb DEFAULT NULL,
    accept_if       text DEFAULT NULL,
    require_tool_use boolean DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    chosen_model text := coalesce(submit.model, nullif(current_setting('agent_loop.default_model', true), ''));
    wanted_tools text[] := ARRAY(SELECT DISTINCT t FROM unnest(coalesce(submit.tools, '{}')) t ORDER BY 1);
    task_id      bigint;
BEGIN
    IF chosen_model IS NULL THEN
        RAISE EXCEPTION 'no model given'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass model => ''name'' or set agent_loop.default_model';
    END IF;
    IF submit.timeout IS NOT NULL AND submit.timeout <= '0'::interval THEN
        RAISE EXCEPTION 'timeout must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Everything else is checked by the tasks_check_new trigger, for every insert.

    -- array_cat() hands over a plain copy of wanted_tools: PL/pgSQL holds arrays expanded, and
    -- a generic plan stores those with a 4-byte header where every later version of the row
    -- has a 1-byte one, so the claim's update logged the row's whole middle (+60 bytes).
    -- ON CONFLICT only with a key: it inserts speculatively (the unique index checked first, a
    -- 48-byte confirmation record) even for a row without one, which cannot conflict.
    IF submit.idempotency_key IS NULL THEN
        INSERT INTO agent_loop.tasks (goal, model, tools, max_steps, deadline, metadata,
                                      token_budget, priority, run_after, output_schema, accept_if,
                                      require_tool_use)
        VALUES (submit.goal, chosen_model, array_cat(wanted_tools, '{}'), submit.max_steps,
                now() + submit.timeout, coalesce(submit.metadata, '{}'), submit.token_budget,
                coalesce(submit.priority, 0), coalesce(submit.run_after, now()),
                submit.output_schema, submit.accept_if, submit.require_tool_use)
        RETURNING id INTO task_id;
    ELSE
        INSERT INTO agent_loop.tasks (goal, model, tools, max_steps, deadline, metadata,
                                      token_budget, priority, run_after, output_schema, accept_if,
                                      require_tool_use, idempotency_key)
        VALUES (submit.goal, chosen_model, array_cat(wanted_tools, '{}'), submit.max_steps,
                now() + submit.timeout, coalesce(submit.metadata, '{}'), submit.token_budget,
                coalesce(submit.priority, 0), coalesce(submit.run_after, now()),
                submit.output_schema, submit.accept_if, submit.require_tool_use,
                submit.idempotency_key)
        ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id INTO task_id;
        IF task_id IS NULL THEN  -- the same key was submitted before: that task is the answer
            SELECT t.id INTO task_id FROM agent_loop.tasks t
             WHERE t.owner = current_user::regrole AND t.idempotency_key = submit.idempotency_key;
            RETURN task_id;
        END IF;
    END IF;
    PERFORM agent_loop._wake_worker();
    RETURN task_id;
END
$$;
COMMENT ON FUNCTION submit IS
    'Queues a task and returns its id at once; a worker starts it when this transaction commits. '
    'tools names entries of agent_loop.tools; they run with the caller''s privileges. '
    'timeout sets the deadline; idempotency_key makes a repeated submit return the same task. '
    'output_schema (a JSON Schema) asks for a structured answer, validated and stored in '
    'result->''output''. accept_if is a boolean SQL expression over the answer ($1 text, $2 jsonb) '
    'and the database that must hold before the answer is accepted; a failed check goes back '
    'to the model. require_tool_use (default: true when tools are given) asks for an answer '
    'that rests on data a tool returned.';

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION send(task_id bigint, message text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
DECLARE
    current_status task_status;
    message_id     bigint;
BEGIN
    IF send.message IS NULL OR btrim(send.message) = '' THEN
        RAISE EXCEPTION 'message must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(send.message) > 65536 THEN
        RAISE EXCEPTION 'message is % bytes; the limit is 64 kB', octet_length(send.message)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- The row lock orders this send against the worker's step: the message is taken in by the
    -- next step whatever the timing.
    SELECT t.status INTO current_status FROM agent_loop.tasks t
     WHERE t.id = send.task_id AND t.owner = current_user::regrole FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % not found', send.task_id USING ERRCODE = 'no_data_found',
            HINT = 'only the task''s owner can send it messages';
    END IF;
    IF current_status NOT IN ('queued', 'running', 'waiting_approval', 'waiting_subtasks') THEN
        RAISE EXCEPTION 'task % has already ended (%)', send.task_id, current_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO agent_loop.guidance (task_id, message) VALUES (send.task_id, send.message)
    RETURNING id INTO message_id;
    RETURN message_id;
END
$$;
COMMENT ON FUNCTION send IS
    'Sends guidance to a running task: the next step after this transaction commits takes it '
    'in as a user message (a guidance step in the trace), before the next model call. A '
    'final answer given while a message waited is set aside and the model decides again with '
    'the message, if a step is left.';

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION cancel(task_id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
DECLARE
    current_status task_status;
BEGIN
    UPDATE agent_loop.tasks t SET cancel_requested_at = coalesce(t.cancel_requested_at, now())
     WHERE t.id = cancel.task_id
       AND t.status IN ('queued', 'running', 'waiting_approval', 'waiting_subtasks')
    RETURNING t.status INTO current_status;
    IF FOUND THEN
        -- The subtree goes with it: subtasks, and theirs.
        WITH RECURSIVE subtree AS (
            SELECT c.id FROM agent_loop.tasks c WHERE c.parent_id = cancel.task_id
            UNION
            SELECT c.id FROM agent_loop.tasks c JOIN subtree s ON c.parent_id = s.id)
        UPDATE agent_loop.tasks t SET cancel_requested_at = coalesce(t.cancel_requested_at, now())
          FROM subtree
         WHERE t.id = subtree.id
           AND t.status IN ('queued', 'running', 'waiting_approval', 'waiting_subtasks');
        PERFORM agent_loop._wake_worker();
        RETURN true;
    END IF;
    SELECT t.status INTO current_status FROM agent_loop.tasks t WHERE t.id = cancel.task_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % not found', cancel.task_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN false;  -- already finished
END
$$;
COMMENT ON FUNCTION cancel IS
    'Asks for a task to stop: it ends as cancelled before its next step (at once if it waits), '
    'and an answer from a model call in flight is discarded. Its subtasks, and theirs, are '
    'cancelled with it. Returns false if the task had already finished.';

-- ---------------------------------------------------------------------------------------------
-- A perceive row names the lessons recalled for its task by their key in reflections:
-- content->'lessons' is [[task_id, id], ...]. This reads them back, in order; lesson is NULL
-- for one deleted since (forget()). Row-level security applies: a role reads its own.
CREATE FUNCTION _recalled_lessons(owner regrole, lessons jsonb)
RETURNS TABLE (n bigint, task_id bigint, id bigint, lesson text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.n, (k.key->>0)::bigint, (k.key->>1)::bigint, r.lesson
      FROM pg_catalog.jsonb_array_elements($2) WITH ORDINALITY AS k (key, n)
      LEFT JOIN agent_loop.reflections r
        ON r.owner = $1 AND r.task_id = (k.key->>0)::bigint AND r.id = (k.key->>1)::bigint
$$;
COMMENT ON FUNCTION _recalled_lessons IS
    'Internal: the lessons a perceive row names (content->''lessons''), in order; NULL lesson '
    'for one deleted since. Used by trace() and by the worker resuming a task.';

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION trace(task_id bigint)
RETURNS TABLE (n int, turn int, phase text, kind text, summary text,
               tokens int, latency_ms int, at timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT FROM agent_loop.tasks t WHERE t.id = trace.task_id) THEN
        RAISE EXCEPTION 'task % not found', trace.task_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT l.n, l.turn, l.phase, l.kind, l.summary, l.tokens, l.latency_ms, l.at
      FROM (
    SELECT s.n, s.turn, s.phase::text, s.kind::text,
           -- The log's own decoder writes the line; a perceive row gets the lessons it names
           -- (a forgotten one said so), an awaited call its approval.
           agent_loop._step_summary(s.phase::text, s.kind::text,
               CASE WHEN s.content ? 'lessons' THEN s.content || jsonb_build_object('recalled',
                 (SELECT coalesce(jsonb_agg(jsonb_build_array(r.task_id, r.id,
                                   coalesce(r.lesson, '(lesson forgotten since)')) ORDER BY r.n), '[]')
                    FROM agent_loop._recalled_lessons(s.owner, s.content->'lessons') r))
               ELSE s.content END, t.goal) ||
           CASE WHEN a.call_id IS NULL THEN ''
                WHEN a.decision IS NULL THEN ' awaiting approval'
                ELSE format(' %s by %s', a.decision, a.decided_by) END AS summary,
           s.input_tokens + s.output_tokens AS tokens,
           s.latency_ms, s.created_at AS at, s.n AS after_n, false AS lesson
      FROM agent_loop.steps s
      JOIN agent_loop.tasks t ON t.id = s.task_id
      LEFT JOIN agent_loop.approvals a
        ON s.kind = 'tool_call' AND a.task_id = s.task_id AND a.call_id = s.content->>'call_id'
     WHERE s.task_id = trace.task_id
    UNION ALL
    -- Each lesson (in reflections, not in the log; a retried task can have two) after the
    -- last row its transaction wrote. It has no n of its own.
    SELECT NULL, last.turn, 'reflect', 'reflection',
           agent_loop._step_summary('reflect', 'reflection',
               jsonb_build_object('outcome', r.outcome, 'lesson', r.lesson), t.goal),
           NULL, NULL, r.created_at, last.n, true
      FROM agent_loop.tasks t
      JOIN agent_loop.reflections r ON r.owner = t.owner AND r.task_id = t.id
      LEFT JOIN LATERAL (SELECT s.n, s.turn FROM agent_loop.steps s
                          WHERE s.task_id = t.id AND s.created_at <= r.created_at
                          ORDER BY s.n DESC LIMIT 1) last ON true
     WHERE t.id = trace.task_id
           ) l
     ORDER BY l.after_n, l.lesson;
END
$$;
COMMENT ON FUNCTION trace IS
    'The task''s loop step by step, one readable line per step row (n): goal and recalled '
    'lessons, guidance, model reasoning and messages, tool calls (with their approval, for '
    'tools that need one) and results, verifications, revised plans, compactions, errors; and '
    'after the last row of the step that ended the task, its lesson (from reflections, n NULL)';

-- ---------------------------------------------------------------------------------------------
-- security_invoker: the view shows what the querying role may see, row-level security included.
CREATE VIEW tasks_overview WITH (security_invoker = true) AS
SELECT t.id,
       t.owner,
       t.status,
       t.phase,
       format('%s/%s', t.steps_done, t.max_steps) AS steps,
       t.model,
       t.input_tokens + t.output_tokens AS tokens,
       t.cost,
       coalesce(t.finished_at, now()) - coalesce(t.started_at, t.created_at) AS elapsed,
       t.error_code,
       left(regexp_replace(t.goal, '\s+', ' ', 'g'), 80) AS goal
  FROM agent_loop.tasks t;
COMMENT ON VIEW tasks_overview IS
    'One line per visible task: state, progress, tokens, cost, time, error.';

COMMENT ON FUNCTION retry IS
    'Re-queues a failed or cancelled task; it resumes from its last committed step with '
    'max_steps more steps (default: its original number) and a deadline timeout from now.';
COMMENT ON FUNCTION prune IS
    'Deletes your tasks (all, for agent_loop_admin) that ended more than older_than ago, '
    'with their steps; returns how many. Lessons stay. The setting agent_loop.retention '
    'makes the worker do this on its own.';
COMMENT ON FUNCTION worker_status IS 'Raw rows behind the workers view, read from shared memory.';

CREATE VIEW workers WITH (security_invoker = true) AS
SELECT d.datname AS database, w.pid, to_timestamp(w.started_at) AS started_at, w.in_flight,
       w.helper_threads, w.tasks_claimed, w.steps_done, to_timestamp(w.last_wakeup) AS last_wakeup,
       w.prewarmed_blocks
  FROM agent_loop.worker_status() w
  LEFT JOIN pg_database d ON d.oid = w.database_oid::oid;
COMMENT ON VIEW workers IS 'Running agent_loop workers of this server: one per database with the extension.';

-- The worker reports the statement of a tool call, which starts with a comment naming its task,
-- step and tool; application_name, which every role sees, names neither.
CREATE VIEW tool_activity WITH (security_invoker = true) AS
SELECT a.task_id, a.step, a.tool, t.owner, current_database()::name AS database, a.pid,
       a.running_for, a.wait_event_type, a.wait_event, a.query_id, a.query
  FROM agent_loop._tool_activity() a
  JOIN agent_loop.tasks t ON t.id = a.task_id;
COMMENT ON VIEW tool_activity IS
    'Tool calls running now, of the tasks you may see: which task, step and tool runs which '
    'statement, for how long, and what it waits on. query_id joins pg_stat_statements.queryid; the statement text there '
    'starts with /* agent_loop task=N step=N tool=name */ (of the first call it saw).';

GRANT SELECT ON tasks_overview, workers, tool_activity TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION wait(task_id bigint, timeout interval DEFAULT '30 seconds')
RETURNS TABLE (id bigint, status task_status, result jsonb, error_code text,
               error_message text, steps_done int)
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
BEGIN
    PERFORM agent_loop._wait_for_task(wait.task_id, extract(epoch FROM wait.timeout) * 1000);
    RETURN QUERY
    SELECT t.id, t.status, t.result, t.error_code, t.error_message, t.steps_done
      FROM agent_loop.tasks t WHERE t.id = wait.task_id;
END
$$;
COMMENT ON FUNCTION wait IS
    'Blocks in the server until the task ends, waits for approval, or timeout passes, then '
    'returns its state. Needs READ COMMITTED, and the submitting transaction must have committed.';

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION register_tool(function regprocedure, description text, name text DEFAULT NULL,
                              needs_approval boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
DECLARE
    fn         pg_proc;
    tool_name  text;
    signature  jsonb;
    bad_type   text;
BEGIN
    SELECT * INTO fn FROM pg_proc p WHERE p.oid = register_tool.function;
    tool_name := coalesce(register_tool.name, fn.proname);
    IF fn.prokind <> 'f' THEN
        RAISE EXCEPTION '% is not a plain function', register_tool.function
            USING ERRCODE = 'wrong_object_type', HINT = 'procedures and aggregates cannot be tools';
    END IF;
    IF fn.provariadic <> 0 THEN
        RAISE EXCEPTION 'variadic function % cannot be a tool', register_tool.function
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF tool_name IN ('sql_query', 'spawn_subtasks') OR tool_name !~ '^[a-zA-Z0-9_-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid tool name "%"', tool_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'names are 1 to 64 letters, digits, _ or -; sql_query and spawn_subtasks are built in';
    END IF;
    IF coalesce(btrim(register_tool.description), '') = '' THEN
        RAISE EXCEPTION 'a tool needs a description: the model chooses tools by it'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (pg_has_role('agent_loop_admin', 'MEMBER') OR pg_has_role(fn.proowner, 'USAGE')) THEN
        RAISE EXCEPTION 'permission denied to register % as a tool', register_tool.function
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only the function''s owner or a member of agent_loop_admin can.';
    END IF;

    -- Input arguments in order; names come from proargnames, which also lists OUT arguments.
    WITH args AS (
        SELECT a.pos, a.type_oid,
               CASE WHEN fn.proallargtypes IS NULL THEN fn.proargnames[a.pos]
                    ELSE (SELECT fn.proargnames[o.i]
                            FROM generate_subscripts(fn.proallargtypes, 1) o(i)
                           WHERE fn.proargmodes[o.i] IN ('i', 'b')
                           ORDER BY o.i OFFSET a.pos - 1 LIMIT 1) END AS arg_name
          FROM unnest(fn.proargtypes::oid[]) WITH ORDINALITY a(type_oid, pos)
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', coalesce(nullif(arg_name, ''), 'arg' || pos),
               'named', coalesce(nullif(arg_name, ''), '') <> '',
               'type', format_type(type_oid, NULL),
               'has_default', pos > fn.pronargs - fn.pronargdefaults) ORDER BY pos), '[]'),
           string_agg(format_type(type_oid, NULL), ', ')
               FILTER (WHERE (SELECT typtype FROM pg_type WHERE oid = type_oid) = 'p')
      INTO signature, bad_type
      FROM args;
    IF bad_type IS NOT NULL THEN
        RAISE EXCEPTION 'function % takes pseudo-type arguments (%)', register_tool.function, bad_type
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF (SELECT typtype FROM pg_type WHERE oid = fn.prorettype) = 'p'
       AND fn.prorettype NOT IN ('void'::regtype, 'record'::regtype) THEN
        RAISE EXCEPTION 'function % returns %, which cannot be a tool result',
                        register_tool.function, format_type(fn.prorettype, NULL)
            USING ERRCODE = 'feature_not_supported';
    END IF;

    INSERT INTO agent_loop.tools AS t (name, function, description, parameters, signature,
                                       returns_set, returns_void, needs_approval)
    VALUES (tool_name, register_tool.function, register_tool.description,
            agent_loop._parameters_schema(signature), signature, fn.proretset,
            fn.prorettype = 'void'::regtype, coalesce(register_tool.needs_approval, false))
    ON CONFLICT ON CONSTRAINT tools_pkey DO UPDATE
       SET function = EXCLUDED.function, description = EXCLUDED.description,
           parameters = EXCLUDED.parameters, signature = EXCLUDED.signature,
           returns_set = EXCLUDED.returns_set, returns_void = EXCLUDED.returns_void,
           needs_approval = EXCLUDED.needs_approval;
    RETURN tool_name;
END
$$;
COMMENT ON FUNCTION register_tool IS
    'Makes a SQL function available as a tool. Its JSON Schema comes from the signature; at '
    'run time arguments are bound as typed parameters and the function runs with the task '
    'owner''s privileges. Needs ownership of the function or agent_loop_admin. With '
    'needs_approval, each call waits for approve() or reject() before it runs.';

-- ---------------------------------------------------------------------------------------------
-- Decisions on calls of needs_approval tools. Both run with the caller's privileges: row-level
-- security lets the task's owner and agent_loop_admin decide; a trigger on approvals re-queues
-- the task when its last pending call is decided.
CREATE FUNCTION _decide(task_id bigint, call_id text, decision text, reason text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
#variable_conflict use_column
DECLARE
    decided int;
BEGIN
    UPDATE agent_loop.approvals a SET decision = _decide.decision, reason = _decide.reason
     WHERE a.task_id = _decide.task_id AND a.decision IS NULL
       AND (_decide.call_id IS NULL OR a.call_id = _decide.call_id);
    GET DIAGNOSTICS decided = ROW_COUNT;
    IF decided > 0 THEN
        RETURN decided;
    END IF;
    IF NOT EXISTS (SELECT FROM agent_loop.approvals a WHERE a.task_id = _decide.task_id
                      AND (_decide.call_id IS NULL OR a.call_id = _decide.call_id)) THEN
        RAISE EXCEPTION '%', CASE WHEN _decide.call_id IS NULL
                                  THEN format('task %s has no calls awaiting approval', _decide.task_id)
                                  ELSE format('task %s has no call "%s" awaiting approval',
                                              _decide.task_id, _decide.call_id) END
            USING ERRCODE = 'no_data_found',
                  HINT = 'see agent_loop.pending_approvals; only the task''s owner or an agent_loop_admin can decide';
    END IF;
    RAISE EXCEPTION 'the calls of task % were already decided', _decide.task_id
        USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

CREATE FUNCTION approve(task_id bigint, call_id text DEFAULT NULL) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, agent_loop AS $$
    SELECT agent_loop._decide(task_id, call_id, 'approved', NULL)
$$;
COMMENT ON FUNCTION approve IS
    'Approves a pending call of a needs_approval tool (all of the task''s pending calls when '
    'call_id is NULL); returns how many were decided. When no call of the task is pending any '
    'more, the task is queued again and its next step runs the approved calls as the owner.';

CREATE FUNCTION reject(task_id bigint, call_id text DEFAULT NULL, reason text DEFAULT NULL)
RETURNS int
LANGUAGE sql SET search_path = pg_catalog, agent_loop AS $$
    SELECT agent_loop._decide(task_id, call_id, 'rejected', reason)
$$;
COMMENT ON FUNCTION reject IS
    'Rejects a pending call (all of the task''s pending calls when call_id is NULL): it never '
    'runs, and the model reads the rejection and the reason as the call''s result.';

CREATE VIEW pending_approvals WITH (security_invoker = true) AS
SELECT a.task_id, a.call_id, a.tool, a.arguments, a.owner, a.requested_at,
       left(regexp_replace(t.goal, '\s+', ' ', 'g'), 80) AS goal
  FROM agent_loop.approvals a
  JOIN agent_loop.tasks t ON t.id = a.task_id
 WHERE a.decision IS NULL AND t.status = 'waiting_approval';
COMMENT ON VIEW pending_approvals IS
    'Calls waiting for approve() or reject(), of the tasks you may see.';
GRANT SELECT ON pending_approvals TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION forget(containing text DEFAULT NULL, owner regrole DEFAULT current_user::regrole)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, agent_loop AS $$
BEGIN
    IF forget.owner IS NULL THEN
        RAISE EXCEPTION 'owner must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF forget.owner <> current_user::regrole AND NOT pg_has_role('agent_loop_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to forget the lessons of %', forget.owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only members of agent_loop_admin can forget for another role.';
    END IF;
    RETURN agent_loop._delete_lessons(forget.owner::oid, forget.containing);
END
$$;
COMMENT ON FUNCTION forget IS
    'Deletes lessons from memory: all of a role''s (by default yours), or those containing the '
    'given words; returns how many. Later tasks no longer recall them; step logs keep their '
    'copy. Forgetting for another role needs agent_loop_admin.';
