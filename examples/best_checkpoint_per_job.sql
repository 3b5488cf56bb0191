-- The best checkpoint of every succeeded fine-tuning job (lowest full validation loss), next to your notes
-- on the experiment it belongs to, and whether training went on past it.
--
--   openai-vtab -header -column experiments.db < examples/best_checkpoint_per_job.sql
--   openai-vtab --demo -header -column :memory: < examples/best_checkpoint_per_job.sql      (sample data)
--
-- `experiments` stands for a table of your own; a temp one is made here so that the recipe runs anywhere
-- (drop these two statements if experiments.db has the real one). Jobs are matched to it by the
-- "experiment" key of their metadata, which you set when creating a job: metadata={"experiment": "sql-v1"}.
CREATE TEMP TABLE IF NOT EXISTS experiments(name TEXT PRIMARY KEY, hypothesis TEXT);
INSERT OR REPLACE INTO temp.experiments VALUES
    ('triage-baseline', 'Route support tickets to one of 12 queues; 1,200 labelled tickets'),
    ('triage-more-data', 'Same task with 4,800 tickets, including the long tail of rare queues'),
    ('sql-v1', 'Write SQLite queries from questions about the analytics schema'),
    ('sql-v2-lr', 'sql-v1 with a higher learning rate and more epochs'),
    ('tone-distill', 'Rewrite replies in the house tone, distilled from a larger model''s drafts'),
    ('invoice-v1', 'Pull totals and line items out of supplier invoices');

-- `succeeded` is read once and materialized, so that job_checkpoints can take every job id at once from the
-- IN list (fetched concurrently) and SQLite joins the rows back through an index on the materialized jobs.
-- A plain JOIN of the two API tables would fetch the checkpoints one job after another.
WITH succeeded AS MATERIALIZED (
    SELECT id, model, json_extract(metadata, '$.experiment') AS experiment
    FROM fine_tuning_jobs WHERE status = 'succeeded'
),
ranked AS (
    SELECT e.name AS experiment, j.model, j.id AS job, c.step_number, c.full_valid_loss,
           c.full_valid_mean_token_accuracy,
           row_number() OVER (PARTITION BY j.id ORDER BY c.full_valid_loss) AS rank,
           max(c.step_number) OVER (PARTITION BY j.id) AS last_step
    FROM job_checkpoints c
    JOIN succeeded j ON j.id = c.fine_tuning_job_id
    JOIN experiments e ON e.name = j.experiment
    WHERE c.fine_tuning_job_id IN (SELECT id FROM succeeded) AND c.full_valid_loss IS NOT NULL
)
SELECT experiment, model, job, step_number AS best_step, last_step,
       full_valid_loss AS loss, full_valid_mean_token_accuracy AS accuracy
FROM ranked
WHERE rank = 1
ORDER BY experiment, loss;
