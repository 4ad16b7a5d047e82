-- Installation, registries, and every bad argument the API must refuse with a clear SQLSTATE.
\set SHOW_CONTEXT never
CREATE EXTENSION agent_loop;
SELECT extname, extversion IS NOT NULL AS has_version FROM pg_extension WHERE extname = 'agent_loop';
-- Every table, view and function of the API is documented.
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'agent_loop' AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'agent_loop' AND p.proname NOT LIKE '\_%' AND obj_description(p.oid, 'pg_proc') IS NULL;

-- Roles used by the tests: two users and an admin.
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN IN ROLE agent_loop_admin;

-- Models: the scripted server, the same behind an API key read from the server's environment,
-- and an endpoint where nothing listens.
SELECT agent_loop.add_model('scripted', :'model_url', 'scripted', options => '{"temperature": 0}');
SELECT agent_loop.add_model('secured', :'secured_url', 'scripted', api_key_env => 'AGENT_LOOP_TEST_KEY');
SELECT agent_loop.add_model('keyless', :'secured_url', 'scripted', api_key_env => 'NO_SUCH_VARIABLE');
SELECT agent_loop.add_model('down', :'dead_url', 'scripted');
SELECT agent_loop.add_model('slow', :'model_url', 'scripted', request_timeout => '1 second');
SELECT name, provider, model, api_key_env FROM agent_loop.models ORDER BY name;

-- Sample data and tools.
CREATE TABLE orders (id int PRIMARY KEY, day date NOT NULL, amount numeric NOT NULL, refunded boolean NOT NULL DEFAULT false);
INSERT INTO orders SELECT g, date '2024-03-01' + (g % 3), g * 10, g % 4 = 0 FROM generate_series(1, 12) g;
GRANT SELECT ON orders TO alice, bob;
CREATE FUNCTION orders_by_day(day date) RETURNS TABLE (id int, amount numeric)
    LANGUAGE sql STABLE AS $$ SELECT o.id, o.amount FROM orders o WHERE o.day = orders_by_day.day ORDER BY o.id $$;
CREATE FUNCTION refund_total(since date DEFAULT '2000-01-01') RETURNS numeric
    LANGUAGE sql STABLE AS $$ SELECT coalesce(sum(amount), 0) FROM orders WHERE refunded AND day >= since $$;
CREATE FUNCTION fail_loudly(reason text) RETURNS int
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'tool refused: %', reason USING HINT = 'try another way'; END $$;
CREATE TABLE notes (id serial PRIMARY KEY, author name NOT NULL DEFAULT current_user, body text NOT NULL);
GRANT SELECT, INSERT ON notes TO alice;
GRANT USAGE ON SEQUENCE notes_id_seq TO alice;
CREATE FUNCTION add_note(body text) RETURNS int
    LANGUAGE sql AS $$ INSERT INTO notes (body) VALUES (add_note.body) RETURNING id $$;
CREATE TABLE secrets (code text);
INSERT INTO secrets VALUES ('swordfish');
CREATE FUNCTION read_secret() RETURNS text LANGUAGE sql AS $$ SELECT code FROM secrets $$;
CREATE FUNCTION slow_tool(seconds float8) RETURNS text
    LANGUAGE sql AS $$ SELECT pg_sleep(seconds)::text $$;

SELECT agent_loop.register_tool('orders_by_day(date)', 'Orders placed on one day');
SELECT agent_loop.register_tool('refund_total(date)', 'Sum of refunded orders since a day');
SELECT agent_loop.register_tool('fail_loudly(text)', 'A tool that always raises');
SELECT agent_loop.register_tool('add_note(text)', 'Store a note');
SELECT agent_loop.register_tool('read_secret()', 'Read the secret code');
SELECT agent_loop.register_tool('slow_tool(float8)', 'Sleep for a while', name => 'nap');
SELECT name, function, parameters FROM agent_loop.tools ORDER BY name;

-- Bad arguments: each is refused with its SQLSTATE and a message that says what to do.
SELECT agent_loop.submit('goal', model => 'gpt-17');
CREATE FUNCTION error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'task \d+', 'task N');
END $$;
-- For tests that act on a task mid-flight: waits (10 s at most) until a condition holds.
CREATE FUNCTION await_true(condition text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    holds boolean;
BEGIN
    FOR i IN 1..200 LOOP
        EXECUTE 'SELECT ' || condition INTO holds;   -- a fresh snapshot each time
        IF holds THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;
CREATE FUNCTION await_status(task bigint, wanted agent_loop.task_status, steps int DEFAULT 0)
RETURNS boolean LANGUAGE sql AS $$
    SELECT await_true(format('EXISTS (SELECT FROM agent_loop.tasks WHERE id = %s AND status = %L
                                         AND steps_done >= %s)', task, wanted, steps)) $$;
CREATE FUNCTION await_running(task bigint, steps int DEFAULT 0) RETURNS boolean
    LANGUAGE sql AS $$ SELECT await_status(task, 'running', steps) $$;
SELECT statement, error_of(statement) FROM (VALUES
    ($$SELECT agent_loop.submit('', model => 'scripted')$$),
    ($$SELECT agent_loop.submit('goal')$$),
    ($$SELECT agent_loop.submit('goal', model => 'scripted', max_steps => 0)$$),
    ($$SELECT agent_loop.submit('goal', model => 'scripted', tools => '{sql_query,telepathy}')$$),
    ($$SELECT agent_loop.submit('goal', model => 'scripted', timeout => '-1 second')$$),
    ($$SELECT agent_loop.submit('goal', model => 'scripted', token_budget => 0)$$),
    ($$SELECT agent_loop.submit('goal', model => 'scripted', metadata => '[1, 2]')$$),
    ($$SELECT agent_loop.submit(repeat('x', 1048577), model => 'scripted')$$),
    ($$SELECT agent_loop.add_model('x', 'ftp://example', 'm')$$),
    ($$SELECT agent_loop.add_model('x', 'http://example', 'm', provider => 'carrier_pigeon')$$),
    ($$SELECT agent_loop.add_model('x', 'http://example', 'm', api_key_env => 'sk-live-abc123')$$),
    ($$SELECT agent_loop.register_tool('orders_by_day(date)', '')$$),
    ($$SELECT agent_loop.register_tool('orders_by_day(date)', 'Orders', name => 'sql_query')$$),
    ($$SELECT agent_loop.register_tool('max(integer)', 'An aggregate')$$),
    ($$SELECT agent_loop.register_tool('pg_catalog.array_length(anyarray, int)', 'Pseudo-typed')$$),
    ($$SELECT agent_loop.cancel(424242)$$),
    ($$SELECT * FROM agent_loop.trace(424242)$$),
    ($$SELECT * FROM agent_loop.wait(424242, '1 second')$$)
) AS bad(statement);
-- Nothing above created a task.
SELECT count(*) AS tasks FROM agent_loop.tasks;

-- Non-admin roles cannot add models or register functions they do not own.
SET ROLE alice;
SELECT error_of($$SELECT agent_loop.add_model('mine', 'http://example', 'm')$$);
SELECT agent_loop.register_tool('read_secret()', 'Read the secret code', name => 'steal');
RESET ROLE;
