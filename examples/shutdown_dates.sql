-- Which of our fine-tuned models stop serving, and when: a fine-tuned model serves until its base model's
-- shutdown date (models.shutdown_date; NULL while none is announced). Soonest first. A LEFT JOIN keeps the jobs
-- whose base model /models no longer lists (retired, or not visible to this key): base_listed says so. A job
-- trained on top of another fine-tuned model names that model as its base: follow it to the first base.
--
--   openai-vtab -header -column :memory: < examples/shutdown_dates.sql
--   openai-vtab --demo -header -column :memory: < examples/shutdown_dates.sql      (sample data)
SELECT j.fine_tuned_model,
       j.model AS base_model,
       b.shutdown_date,
       CAST(julianday(b.shutdown_date) - julianday(date('now')) AS INTEGER) AS days_left,
       b.id IS NOT NULL AS base_listed
FROM fine_tuning_jobs j
LEFT JOIN models b ON b.id = j.model
WHERE j.status = 'succeeded'
ORDER BY b.shutdown_date IS NULL, b.shutdown_date, j.fine_tuned_model;
