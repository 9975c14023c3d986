"""Roulette jobs: each takes ids and is safe to run twice."""

from __future__ import annotations

from jobs import app_context


def expire_offer(offer_id: int) -> bool:
    """End the offer unanswered once its deadline passed and pass the lead on
    (the worker's sweep does this every half second; this job does it for
    one offer, e.g. when queued by hand). A second run, or a run after the
    agent answered, changes nothing."""
    with app_context():
        from portal.roulette.decisions import expire_offer as expire

        return expire(offer_id)


def sweep(full: bool = True) -> dict[str, int]:
    """The safety net (also run every second by each worker's sweeper)."""
    with app_context():
        from portal.roulette.sweep import sweep as run_sweep

        return run_sweep(full=full)


def route_lead(lead_id: int) -> bool:
    """Route a queued lead (e.g. after the roulette was switched on)."""
    with app_context():
        from portal.roulette.routing import route_lead as route

        return route(lead_id) is not None
