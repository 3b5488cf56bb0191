-- A snapshot of every job and checkpoint saved into a database file, for the stock sqlite3 CLI or any
-- other SQLite tool. The OpenAI tables themselves leave nothing in the file.
--
--   openai-vtab -bail snapshot.db < examples/snapshot.sql
--   sqlite3 snapshot.db "SELECT model, step_number, full_valid_loss FROM checkpoints_snapshot ORDER BY 3 LIMIT 5"
--
-- One transaction, and -bail: if a fetch fails, the shell stops and the previous snapshot stays as it was.
BEGIN;
DROP TABLE IF EXISTS jobs_snapshot;
CREATE TABLE jobs_snapshot AS
SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now') AS taken_at, * FROM fine_tuning_jobs;
DROP TABLE IF EXISTS checkpoints_snapshot;
CREATE TABLE checkpoints_snapshot AS
SELECT j.id AS job_id, j.model, j.status, j.user_provided_suffix AS suffix,
       c.id AS checkpoint_id, c.created_at, c.step_number, c.fine_tuned_model_checkpoint,
       c.train_loss, c.train_mean_token_accuracy, c.valid_loss, c.valid_mean_token_accuracy,
       c.full_valid_loss, c.full_valid_mean_token_accuracy
FROM jobs_snapshot j
JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id
WHERE c.fine_tuning_job_id IN (SELECT id FROM jobs_snapshot);  -- all job ids at once: fetched concurrently
COMMIT;
