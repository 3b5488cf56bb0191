-- For each succeeded job: the step of its training curve with the lowest validation loss (job_metrics reads
-- every step from the job's result file), and the saved checkpoint nearest to it, the one to deploy or keep.
--
--   openai-vtab -header -column :memory: < examples/best_step.sql
--   openai-vtab --demo -header -column :memory: < examples/best_step.sql      (sample data)
--
-- Each IN (SELECT ...) hands a table every job at once, fetched concurrently (README: Joins and IN lists);
-- SQLite's min() takes the other columns of a GROUP BY from the row of the minimum.
WITH best AS MATERIALIZED (
    SELECT fine_tuning_job_id AS job, step, min(valid_loss) AS valid_loss
    FROM job_metrics
    WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded')
      AND valid_loss IS NOT NULL  -- a job trained without a validation file has no best step
    GROUP BY fine_tuning_job_id
),
saved AS MATERIALIZED (
    SELECT fine_tuning_job_id AS job, step_number, fine_tuned_model_checkpoint
    FROM job_checkpoints
    WHERE fine_tuning_job_id IN (SELECT job FROM best)
)
SELECT b.job,
       b.step AS best_step,
       b.valid_loss,
       s.step_number AS nearest_checkpoint,
       min(abs(s.step_number - b.step)) AS steps_away,
       s.fine_tuned_model_checkpoint AS checkpoint
FROM best b
JOIN saved s ON s.job = b.job
GROUP BY b.job
ORDER BY b.valid_loss;
