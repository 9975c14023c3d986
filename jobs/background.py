"""The one RQ entry for every background job (portal.background)."""

from __future__ import annotations

from jobs import app_context


def run(job_id: int) -> dict | None:
    """Perform background job `job_id` from its last committed batch; safe to
    run twice (a second run finds the job ended or leased and returns)."""
    with app_context():
        from portal.background.runs import perform

        return perform(job_id)
