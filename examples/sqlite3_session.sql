-- A session in the stock sqlite3 CLI, which cannot load Python virtual tables: the openai-vtab loader
-- imports query results into temp tables, and from there on it is plain SQLite.
--
--   sqlite3 experiments.db < examples/sqlite3_session.sql
--
-- `openai-vtab --sqlite3-loader DATABASE [NAME=QUERY ...]` prints SQL that creates a typed temp table per
-- NAME and fills it by running QUERY in `openai-vtab` on the same database file (so a query can join your own
-- tables first); the rows arrive as INSERTs inside a savepoint, so a table gets all of them or none.
-- Write `openai-vtab --demo` below to use the sample data instead.
.headers on
.mode column

-- 1. Without queries: every table that needs no key, as a temp table of the same name.
.read '|openai-vtab --sqlite3-loader experiments.db'
SELECT status, count(*) AS jobs FROM fine_tuning_jobs GROUP BY status ORDER BY jobs DESC, status;

-- 2. A table of your own in experiments.db: the jobs you track, with a note.
CREATE TABLE IF NOT EXISTS tracked_jobs(job_id TEXT PRIMARY KEY, note TEXT);
INSERT OR IGNORE INTO tracked_jobs
SELECT id, model || ' ' || user_provided_suffix FROM fine_tuning_jobs WHERE status = 'succeeded';

-- 3. Checkpoints need a job id: the loader's query joins tracked_jobs, so only those jobs are fetched (the IN
--    list hands all their ids over at once, so they are fetched concurrently).
.read '|openai-vtab --sqlite3-loader experiments.db "checkpoints=SELECT t.note, c.*, c.fine_tuning_job_id FROM tracked_jobs t JOIN job_checkpoints c ON c.fine_tuning_job_id = t.job_id WHERE c.fine_tuning_job_id IN (SELECT job_id FROM tracked_jobs)"'
SELECT note, min(full_valid_loss) AS best_loss, count(*) AS checkpoints
FROM checkpoints GROUP BY fine_tuning_job_id ORDER BY best_loss;
