-- Whether each case behaved: one row per provider and case. Robust to wording: statuses,
-- which tool with which arguments, a number in the answer. run fails unless all hold.
\set QUIET on
\pset footer off
CREATE TEMP VIEW outcome AS
SELECT c.provider, c.name, t.id, t.status, t.error_code, t.error_message, t.result,
       t.result->>'answer' AS answer, t.input_tokens, t.output_tokens, t.cost,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('name', s.content->>'name',
                                  'arguments', s.content->>'arguments') ORDER BY s.n), '[]')
          FROM agent_loop.steps s WHERE s.task_id = t.id AND s.kind = 'tool_call') AS calls,
       (SELECT count(*) FROM agent_loop.steps s WHERE s.task_id = t.id AND s.kind = 'verification'
           AND s.content->>'passed' = 'false') AS rejected,
       (SELECT count(*) FROM agent_loop.steps s WHERE s.task_id = t.id AND s.kind = 'compaction') AS compactions,
       (SELECT s.content->>'summary' FROM agent_loop.steps s WHERE s.task_id = t.id
           AND s.kind = 'compaction' AND s.output_tokens > 0 ORDER BY s.n LIMIT 1) AS summary_by_model,
       EXISTS (SELECT FROM agent_loop.steps s WHERE s.task_id = t.id AND s.phase = 'decide'
                  AND s.n > (SELECT min(k.n) FROM agent_loop.steps k WHERE k.task_id = t.id
                                AND k.kind = 'compaction')) AS decided_after_compaction,
       (SELECT count(*) FROM agent_loop.steps s WHERE s.task_id = t.id AND s.kind = 'tool_result'
           AND NOT (s.content ? 'is_error')) AS results_ok,
       (SELECT count(*) FROM agent_loop.steps s WHERE s.task_id = t.id AND s.input_tokens > 0
           AND s.output_tokens > 0) AS metered_steps
  FROM interop.cases c JOIN agent_loop.tasks t ON t.id = c.task_id;

-- works: what the wire format and the loop must do, whatever the model's wording, and no
-- model_* failure (run fails unless it holds for every case). correct: whether the model also got the answer right, the
-- figure the README reports for this model.
CREATE TEMP VIEW verdicts AS
SELECT provider, name,
       CASE name
         WHEN 'direct answer' THEN status = 'succeeded'
         WHEN 'registered function' THEN EXISTS (
              SELECT FROM jsonb_array_elements(calls) e WHERE e->>'name' = 'units_sold'
                 AND interop.json_or_null(lower(e->>'arguments'))->>'product' = 'mug')
              AND results_ok >= 1
         WHEN 'sql_query' THEN calls @> '[{"name": "sql_query"}]' AND results_ok >= 1
         WHEN 'two calls' THEN (SELECT count(DISTINCT interop.json_or_null(lower(e->>'arguments'))->>'product')
                                  FROM jsonb_array_elements(calls) e
                                 WHERE e->>'name' = 'units_sold'
                                   AND interop.json_or_null(lower(e->>'arguments'))->>'product' IN ('mug', 'kettle')) = 2
         -- llama-server holds the answer to the schema only in Chat Completions (response_format);
         -- its Responses endpoint ignores text.format and Messages has no such field, so there
         -- the loop's own check is what holds: a valid answer, or a defined failure.
         WHEN 'output_schema' THEN status = 'succeeded' AND jsonb_typeof(result->'output'->'units') = 'number'
              OR provider <> 'openai_chat'
                 AND error_code IN ('answer_schema_mismatch', 'repeated_tool_call', 'max_steps_exceeded')
         WHEN 'accept_if rejects the first answer' THEN rejected >= 1
              AND (status = 'succeeded' OR error_code = 'answer_rejected')
         WHEN 'approval' THEN EXISTS (SELECT FROM agent_loop.approvals a WHERE a.task_id = id AND a.decision = 'approved')
              AND EXISTS (SELECT FROM interop.discounts d WHERE d.product = 'mug' AND d.given_by::text = 'tenant')
         WHEN 'compaction' THEN compactions >= 1 AND decided_after_compaction
              AND summary_by_model IS NOT NULL
         WHEN 'cancel during a call' THEN status = 'cancelled'
         WHEN 'usage and cost' THEN input_tokens > 0 AND output_tokens > 0 AND cost > 0 AND metered_steps >= 1
       END
       -- Whatever the case, no request the loop built was refused or misread.
       AND coalesce(error_code, '') NOT LIKE 'model\_%' AS works,
       CASE name
         WHEN 'direct answer' THEN answer ~ '\m42\M'
         WHEN 'registered function' THEN status = 'succeeded' AND answer ~ ('\m' || interop.units_sold('mug') || '\M')
         WHEN 'sql_query' THEN status = 'succeeded' AND answer ~ '\m400\M'
         WHEN 'two calls' THEN status = 'succeeded' AND answer ~ ('\m' || interop.units_sold('mug') || '\M')
              AND answer ~ ('\m' || interop.units_sold('kettle') || '\M')
         WHEN 'output_schema' THEN (result->'output'->>'units')::numeric = interop.units_sold('teapot')
         WHEN 'accept_if rejects the first answer' THEN status = 'succeeded'
         WHEN 'approval' THEN status = 'succeeded'
         -- The model wrote the summary, and it kept the fact the next step needed.
         WHEN 'compaction' THEN status = 'succeeded' AND answer ILIKE '%paprika%'
              AND summary_by_model ~* 'step:? *"?2'
         WHEN 'cancel during a call' THEN true
         WHEN 'usage and cost' THEN true
       END AS correct,
       status || coalesce(' ' || error_code, '') || ': ' ||
       left(regexp_replace(coalesce(answer, error_message, ''), '\s+', ' ', 'g'), 60) ||
       CASE WHEN calls <> '[]' THEN ' calls=' || left(calls::text, 100) ELSE '' END AS detail
  FROM outcome;
