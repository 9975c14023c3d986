"""Small helpers the roulette's service-level tests share (run under `ctx`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import AgentState, Lead, Offer, User
from portal.models.base import utcnow
from portal.roulette import routing
from tests.factories import go_online, make_user


def agent(*departments: str, online: bool = True, **flags) -> User:
    """An attendant in `departments` (default "sales"), online unless told."""
    user = make_user("attendant", departments=list(departments or ["sales"]), **flags)
    if online:
        go_online(user)
    return user


def two_agents() -> tuple[User, User]:
    """Two online agents whose turn order is first, then second."""
    first, second = agent(), agent()
    for user, seconds in ((first, 20), (second, 10)):
        state = db.session.get(AgentState, user.id)
        state.available_changed_at = utcnow() - timedelta(seconds=seconds)
    db.session.commit()
    return first, second


def pending_for(lead: Lead) -> Offer | None:
    return db.session.scalar(
        select(Offer)
        .where(Offer.lead_id == lead.id, Offer.state == "pending")
        .execution_options(populate_existing=True)
    )


def offered(lead: Lead) -> Offer:
    """Route the lead and return its pending offer."""
    routing.route_lead(lead.id)
    offer = pending_for(lead)
    assert offer is not None, "the lead was not offered"
    return offer


def fresh(model):
    """The row as the database has it now (the session keeps loaded rows)."""
    return db.session.get(type(model), model.id, populate_existing=True)


def overdue(offer: Offer, seconds: float = 1) -> None:
    """The offer's deadline passed `seconds` ago (and nobody expired it)."""
    db.session.execute(
        db.update(Offer)
        .where(Offer.id == offer.id)
        .values(expires_at=utcnow() - timedelta(seconds=seconds))
    )
    db.session.commit()


def offers_of(lead: Lead) -> list[tuple[int, str]]:
    """(agent id, state) of each of the lead's offers, oldest first."""
    return [
        (o.agent_id, o.state)
        for o in db.session.scalars(
            select(Offer)
            .where(Offer.lead_id == lead.id)
            .order_by(Offer.id)
            .execution_options(populate_existing=True)
        )
    ]
