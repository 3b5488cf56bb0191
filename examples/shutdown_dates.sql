-- Which of our fine-tuned models stop serving, and when: a fine-tuned model serves until its base model's
-- shutdown date (models.shutdown_date; NULL while none is announced). Soonest first.
--
--   openai-vtab -header -column :memory: < examples/shutdown_dates.sql
--   openai-vtab --demo -header -column :memory: < examples/shutdown_dates.sql      (sample data)
SELECT j.fine_tuned_model,
       j.model AS base_model,
       b.shutdown_date,
       CAST(julianday(b.shutdown_date) - julianday(date('now')) AS INTEGER) AS days_left
FROM fine_tuning_jobs j
JOIN models b ON b.id = j.model
WHERE j.status = 'succeeded'
ORDER BY b.shutdown_date IS NULL, b.shutdown_date, j.fine_tuned_model;
