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

WITH ranked AS (
    SELECT e.name AS experiment, j.model, j.id AS job, c.step_number, c.full_valid_loss,
           c.full_valid_mean_token_accuracy,
           row_number() OVER (PARTITION BY j.id ORDER BY c.full_valid_loss) AS rank,
           max(c.step_number) OVER (PARTITION BY j.id) AS last_step
    FROM experiments e
    JOIN fine_tuning_jobs j ON json_extract(j.metadata, '$.experiment') = e.name
    JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id
    WHERE j.status = 'succeeded' AND c.full_valid_loss IS NOT NULL
)
SELECT experiment, model, job, step_number AS best_step, last_step,
       full_valid_loss AS loss, full_valid_mean_token_accuracy AS accuracy
FROM ranked
WHERE rank = 1
ORDER BY experiment, loss;
