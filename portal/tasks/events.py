"""Where the rules hear of events: after the commit that made each, a job
is queued, and only when the account has an active rule for it."""

from __future__ import annotations

from portal.extensions import db
from portal.models import Contact, User
from portal.queue import enqueue
from portal.tasks.rules import any_active


def after(account_id: int, event: str, job: str, *args: object) -> None:
    if any_active(account_id, event):
        enqueue(job, *args)


def on_status_changed(
    sender: object, *, account_id: int, entry_id: int, **_kw: object
) -> None:
    """contacts' `status_changed`."""
    after(account_id, "status_changed", "jobs.rules.status_changed", entry_id)


def on_lead_created(
    sender: object, *, account_id: int, lead_id: int, **_kw: object
) -> None:
    """leads' `lead_created`."""
    after(account_id, "lead_created", "jobs.rules.lead_created", lead_id)


def on_offer_changed(
    sender: object, *, agent_id: int, offer_id: int, state: str, **_kw: object
) -> None:
    """The roulette's `offer_changed`: an offer that ran out."""
    if state != "expired":
        return
    agent = db.session.get(User, agent_id)
    if agent is not None:
        after(agent.account_id, "offer_expired", "jobs.rules.offer_expired", offer_id)


def on_owner_changed(sender: object, *, owners: dict[int, int], **_kw: object) -> None:
    """contacts' `owner_changed`: a "contact assigned" event per contact
    (one job for the lot; a batch of an import is one signal)."""
    if not owners:
        return
    first = db.session.get(Contact, next(iter(owners)))
    if first is not None:
        after(
            first.account_id,
            "contact_assigned",
            "jobs.rules.contacts_assigned",
            list(owners),
        )
