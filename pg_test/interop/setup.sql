-- The interop suite's database: the sample data (demo.sales), tools, and one model per wire format, all
-- pointing at llama-server (pg_test/interop/run passes :base_url).
\set ON_ERROR_STOP on
\set QUIET on
CREATE EXTENSION agent_loop;
\i :sample
CREATE SCHEMA interop;
CREATE TABLE interop.discounts (product text, given_by regrole DEFAULT current_user::regrole);

CREATE FUNCTION interop.units_sold(product text) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT sum(quantity) FROM demo.sales s WHERE s.product = lower(trim(units_sold.product)) $$;
CREATE FUNCTION interop.give_discount(product text) RETURNS text
LANGUAGE sql AS $$ INSERT INTO interop.discounts (product) VALUES (lower(product)) RETURNING 'discount given on ' || product $$;
-- Each step's result names the next step, with filler that fills a small context window.
CREATE FUNCTION interop.clue(step int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN step >= 3 THEN 'The secret word is PAPRIKA.'
                ELSE 'This is not the secret word yet: call clue with step ' || (step + 1) || ' next. ' END
           || repeat('(filler that takes room) ', 12) $$;

CREATE ROLE tenant;
GRANT USAGE ON SCHEMA interop, demo TO tenant;
GRANT SELECT ON demo.sales TO tenant;
GRANT SELECT, INSERT ON interop.discounts TO tenant;
SELECT agent_loop.register_tool('interop.units_sold(text)', 'How many units of one product were sold') \g /dev/null
SELECT agent_loop.register_tool('interop.give_discount(text)', 'Gives a discount on one product',
                                needs_approval => true) \g /dev/null
SELECT agent_loop.register_tool('interop.clue(int)', 'Returns the clue of one step') \g /dev/null

-- Temperature 0 and a fixed seed; prices so that cost is recorded (per million tokens).
SELECT agent_loop.add_model('qwen_' || p, :'base_url', :'model_name', provider => p,
                            options => '{"temperature": 0, "seed": 42, "parallel_tool_calls": true}',
                            request_timeout => '600 seconds',
                            max_concurrency => 4, input_price => 0.5, output_price => 1.5)
  FROM unnest(ARRAY['openai_chat', 'openai_responses', 'anthropic']) p \g /dev/null
SELECT agent_loop.add_model('qwen_small_' || p, :'base_url', :'model_name', provider => p,
                            options => '{"temperature": 0, "seed": 42}', request_timeout => '600 seconds',
                            max_concurrency => 4, context_window => 500, writes_summaries => true)
  FROM unnest(ARRAY['openai_chat', 'openai_responses', 'anthropic']) p \g /dev/null

CREATE FUNCTION interop.json_or_null(text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN $1::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END $$;

-- For the cancel case: a model that writes 600 tokens whatever it is asked (llama-server's
-- ignore_eos; its Messages endpoint drops the option, there the answer is just long).
SELECT agent_loop.add_model('qwen_long_' || p, :'base_url', :'model_name', provider => p,
                            options => '{"temperature": 0, "ignore_eos": true, "max_tokens": 600}',
                            request_timeout => '600 seconds')
  FROM unnest(ARRAY['openai_chat', 'openai_responses', 'anthropic']) p \g /dev/null

-- Each case, per provider: which task it is.
CREATE TABLE interop.cases (provider text, name text, task_id bigint, PRIMARY KEY (provider, name));
GRANT SELECT, INSERT ON interop.cases TO tenant;
