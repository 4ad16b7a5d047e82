-- Model faults: retried or failed by class, recorded in the step log and the task's error.
-- Tests run with agent_loop.model_max_retries = 2 and short backoff delays.
\set VERBOSITY terse
\set SHOW_CONTEXT never
CREATE FUNCTION fault_task(script text, model text DEFAULT 'scripted') RETURNS bigint
    LANGUAGE sql AS $$ SELECT agent_loop.submit('Fault test. SCRIPT: ' || script, model => model) $$;
CREATE FUNCTION outcome(task bigint) RETURNS TABLE (status agent_loop.task_status, error_code text, error text, answer text)
    LANGUAGE sql AS $$
    SELECT w.status, w.error_code, regexp_replace(w.error_message, '127\.0\.0\.1:\d+', 'HOST', 'g'),
           w.result->>'answer'
      FROM agent_loop.wait(task, '30 seconds') w $$;
CREATE FUNCTION errors(task bigint) RETURNS TABLE (n int, phase text, summary text)
    LANGUAGE sql AS $$
    SELECT t.n, t.phase, regexp_replace(t.summary, '127\.0\.0\.1:\d+', 'HOST', 'g')
      FROM agent_loop.trace(task) t WHERE t.kind = 'error' $$;

-- 429 with Retry-After, then success: the retry is in the log, the task succeeds.
SELECT fault_task('[{"fault": "429", "times": 1, "retry_after": "0.1", "answer": "after the 429"}]') AS id \gset
SELECT * FROM outcome(:id);
SELECT * FROM errors(:id);
-- 500 then 503 then success.
SELECT fault_task('[{"fault": "503", "times": 2, "answer": "after two 503s"}]') AS id \gset
SELECT * FROM outcome(:id);
SELECT count(*) AS retried FROM errors(:id);
-- Malformed output (not JSON) every time: bounded retries, then a clear failure.
SELECT fault_task('[{"fault": "malformed"}]') AS id \gset
SELECT * FROM outcome(:id);
SELECT * FROM errors(:id);
-- Valid JSON of the wrong shape.
SELECT fault_task('[{"fault": "wrong_shape"}]') AS id \gset
SELECT status, error_code, error FROM outcome(:id);
-- A body cut short, once.
SELECT fault_task('[{"fault": "cut", "times": 1, "answer": "whole this time"}]') AS id \gset
SELECT status, answer FROM outcome(:id);
SELECT summary LIKE 'transport: response body cut short%' AS cut_recorded FROM errors(:id);
-- A body larger than agent_loop.max_response_size (1 MB in these tests).
SELECT fault_task('[{"fault": "huge", "bytes": 2000000}]') AS id \gset
SELECT status, error_code, error FROM outcome(:id);
-- A hang past the model's request timeout (1 s): retried, then failed as a timeout.
SELECT fault_task('[{"fault": "hang", "hang_s": 5}]', 'slow') AS id \gset
SELECT status, error_code FROM outcome(:id);
SELECT count(*) AS attempts_failed FROM errors(:id) WHERE summary LIKE 'timeout:%';
-- Quota and context-length errors are never retried.
SELECT fault_task('[{"fault": "quota"}]') AS id \gset
SELECT * FROM outcome(:id);
SELECT count(*) AS error_rows FROM errors(:id);
SELECT fault_task('[{"fault": "context_length"}]') AS id \gset
SELECT status, error_code FROM outcome(:id);
-- The endpoint is down: connection refused, bounded retries, then failure.
SELECT fault_task('[{"answer": "unreachable"}]', 'down') AS id \gset
SELECT status, error_code, error LIKE '%Connection refused%' AS refused FROM outcome(:id);
SELECT count(*) AS error_rows FROM errors(:id);
-- The API key comes from the server's environment (api_key_env) and is sent to the endpoint.
SELECT fault_task('[{"answer": "authenticated"}]', 'secured') AS id \gset
SELECT status, answer FROM outcome(:id);
-- A missing environment variable is a clear error, without a request.
SELECT fault_task('[{"answer": "never"}]', 'keyless') AS id \gset
SELECT * FROM outcome(:id);
-- Or from the superuser-only setting agent_loop.api_keys, for models without api_key_env; a
-- wrong key is an auth error, not retried.
ALTER SYSTEM SET agent_loop.api_keys = 'via_setting=secret-test-key,wrong_key=not-the-key';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT agent_loop.add_model('via_setting', :'secured_url', 'scripted');
SELECT agent_loop.add_model('wrong_key', :'secured_url', 'scripted');
SELECT fault_task('[{"answer": "key from the setting"}]', 'via_setting') AS id \gset
SELECT status, answer FROM outcome(:id);
SELECT fault_task('[{"answer": "never"}]', 'wrong_key') AS id \gset
SELECT * FROM outcome(:id);
SELECT count(*) AS error_rows FROM errors(:id);
SET ROLE alice;
SHOW agent_loop.api_keys;
SELECT count(*) AS listed FROM pg_settings WHERE name = 'agent_loop.api_keys';
RESET ROLE;
ALTER SYSTEM RESET agent_loop.api_keys;
SELECT pg_reload_conf();
-- No key appears anywhere in the database.
SELECT count(*) AS leaked FROM agent_loop.steps WHERE content::text LIKE '%secret-test-key%';
SELECT count(*) AS leaked FROM agent_loop.tasks WHERE error_message LIKE '%secret-test-key%';
-- The worker survived every fault above and still answers.
SELECT fault_task('[{"answer": "still alive"}]') AS id \gset
SELECT status, answer FROM outcome(:id);
