-- The metric curve of one fine-tuning job: losses and accuracy at each checkpoint, a bar for the full
-- validation loss, and the best step marked.
--
--   openai-vtab -header -column :memory: < examples/metric_curve.sql
--   openai-vtab --demo -header -column :memory: < examples/metric_curve.sql      (sample data)
--
-- The job is the latest one that succeeded; put your own id in its place: SELECT 'ftjob-abc123'.
WITH job(id) AS (
    SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded' ORDER BY created_at DESC LIMIT 1
)
SELECT c.step_number AS step,
       c.train_loss,
       c.valid_loss,
       c.full_valid_loss,
       c.full_valid_mean_token_accuracy AS accuracy,
       substr('########################################', 1, CAST(round(c.full_valid_loss * 40) AS INTEGER)) AS curve,
       CASE WHEN c.full_valid_loss = min(c.full_valid_loss) OVER () THEN '<- best' ELSE '' END AS best
FROM job
JOIN job_checkpoints c ON c.fine_tuning_job_id = job.id
ORDER BY c.step_number;
