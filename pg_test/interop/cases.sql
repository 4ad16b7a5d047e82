-- The interop cases for one provider (:provider), submitted as an unprivileged tenant. Each
-- is recorded in interop.cases; checks.sql says whether it behaved. The cancel case is
-- submitted by run, which cancels it while its model call runs.
\set ON_ERROR_STOP on
\set QUIET on
SET ROLE tenant;
\set m 'qwen_' :provider
\set small 'qwen_small_' :provider
INSERT INTO interop.cases VALUES
  (:'provider', 'direct answer',
   agent_loop.submit('What is 17 plus 25? Reply with just the number.', model => :'m')),
  (:'provider', 'registered function',
   agent_loop.submit('How many units of mug were sold? Use the units_sold tool.',
                     model => :'m', tools => '{units_sold}')),
  (:'provider', 'sql_query',
   agent_loop.submit('How many rows does the table demo.sales have?',
                     model => :'m', tools => '{sql_query}')),
  (:'provider', 'two calls',
   agent_loop.submit('How many units of mug were sold, and how many units of kettle? Use the units_sold tool for each.',
                     model => :'m', tools => '{units_sold}')),
  (:'provider', 'output_schema',
   agent_loop.submit('How many units of teapot were sold? Use the units_sold tool.',
                     model => :'m', tools => '{units_sold}',
                     output_schema => '{"type": "object", "properties": {"units": {"type": "integer"}}, "required": ["units"]}')),
  (:'provider', 'accept_if rejects the first answer',
   agent_loop.submit('What is 6 times 7?', model => :'m', accept_if => $$ $1 ~ '^\s*42\s*$' $$)),
  (:'provider', 'approval',
   agent_loop.submit('Give a discount on mug with the give_discount tool.',
                     model => :'m', tools => '{give_discount}')),
  (:'provider', 'compaction',
   agent_loop.submit('Find the secret word: call the clue tool with step 1, then do what each clue says.',
                     model => :'small', tools => '{clue}', max_steps => 6));
INSERT INTO interop.cases SELECT provider, 'usage and cost', task_id FROM interop.cases
 WHERE provider = :'provider' AND name = 'sql_query';
