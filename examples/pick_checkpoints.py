"""Pick the checkpoint to deploy from each succeeded fine-tuning job, and show what finding them cost.

    python examples/pick_checkpoints.py [--max-loss 0.3]

For every succeeded job this prints the checkpoint with the lowest full validation loss: the model name to
call for inference, and whether training went on past it (a later, worse final model means the job
overfitted, and the checkpoint is the better pick). Settings come from OPENAI_API_KEY, OPENAI_BASE_URL,
OPENAI_ORG_ID and OPENAI_PROJECT_ID, as the official SDK reads them.
"""

from __future__ import annotations

import argparse
import sys

import apsw

import openai_vtab

BEST_CHECKPOINTS = """
WITH succeeded AS MATERIALIZED (
    SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded'
),
ranked AS (
    -- The IN list hands every job id to job_checkpoints at once: they are fetched concurrently.
    SELECT c.fine_tuning_job_id AS job, c.step_number, c.full_valid_loss, c.fine_tuned_model_checkpoint AS model,
           row_number() OVER (PARTITION BY c.fine_tuning_job_id ORDER BY c.full_valid_loss) AS rank,
           max(c.step_number) OVER (PARTITION BY c.fine_tuning_job_id) AS last_step
    FROM job_checkpoints c
    WHERE c.fine_tuning_job_id IN (SELECT id FROM succeeded) AND c.full_valid_loss IS NOT NULL
)
SELECT job, model, step_number, last_step, full_valid_loss FROM ranked
WHERE rank = 1 AND full_valid_loss <= ?
ORDER BY full_valid_loss
"""


def main(argv: list[str] | None = None) -> int:
    """Print one line per job; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-loss", type=float, default=float("inf"), help="skip jobs whose best loss is higher")
    args = parser.parse_args(argv)

    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db)
    try:
        rows = db.execute(BEST_CHECKPOINTS, (args.max_loss,)).fetchall()
    except openai_vtab.OpenAIVTabError as error:
        # Every error of the package says what failed and what to do, in one line.
        print(f"error: {error}", file=sys.stderr)
        return 1
    for job, model, step, last_step, loss in rows:
        note = "final model" if step == last_step else f"best at step {step} of {last_step}: deploy the checkpoint"
        print(f"{job}  loss {loss:.4f}  {model}  ({note})")
    print(f"{len(rows)} jobs, {registration.log.sent} requests to the API", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
