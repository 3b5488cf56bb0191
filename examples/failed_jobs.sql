-- Failed fine-tuning jobs, newest first: the API's error code, the parameter it blames, its message, and
-- how many checkpoints the job saved before it failed.
--
--   openai-vtab -header -column :memory: < examples/failed_jobs.sql
--   openai-vtab --demo -line :memory: < examples/failed_jobs.sql      (sample data; -line suits long messages)
SELECT j.id AS job,
       j.model,
       j.user_provided_suffix AS suffix,
       datetime(j.created_at, 'unixepoch') AS created,
       json_extract(j.error, '$.code') AS code,
       json_extract(j.error, '$.param') AS param,
       json_extract(j.error, '$.message') AS message,
       (SELECT count(*) FROM job_checkpoints c WHERE c.fine_tuning_job_id = j.id) AS checkpoints
FROM fine_tuning_jobs j
WHERE j.status = 'failed'
ORDER BY j.created_at DESC;
