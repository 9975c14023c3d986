"""The placement of one offer: the write that gives a lead to an agent.

The promise: a placement is all or none. The lead moves to "offered" only
if it is still queued in the round the plan saw and the agent has not
declined it meanwhile; the agent's turn is stamped only while they are
still switched on; the offer is inserted only then. A rival routing that
got there first shows as LEAD_MOVED or AGENT_TAKEN (the partial unique
indexes on pending offers, `portal.models.roulette`, decide), and nothing
is written. After the commit, `after_offer` pushes the pop-up; a lost push
is made up for on reconnect. The deadline is kept by the worker's expiry
sweep (`portal.roulette.sweep`), not by a job per offer.

The statements are built once, their values passed as parameters named
p_* (see `portal.database.column_param`): building them per placement cost
more than running them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Column, exists, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import Select

from portal.database import column_param, prefixed
from portal.extensions import db
from portal.models import (
    ENDED_WITHOUT_OWNER,
    AgentState,
    Lead,
    LeadState,
    Offer,
    OfferState,
)
from portal.models.base import utcnow
from portal.roulette import push, signals
from portal.roulette.choice import Plan
from portal.roulette.push import OfferCard

log = logging.getLogger(__name__)

# What `place` says when it placed nothing: the lead moved on (stop), or a
# rival routing took the agent (try the next one).
LEAD_MOVED = "lead moved"
AGENT_TAKEN = "agent taken"


@dataclass
class Placed:
    """An offer just committed; push it after the commit."""

    offer_id: int
    agent_id: int
    offered_at: datetime
    expires_at: datetime


def place(
    lead: Lead, lead_plan: Plan, *, account_id: int, timeout: int
) -> Placed | str:
    """Offer the lead (a Lead, or a row with its id, round and exhausted_at)
    to the plan's chosen agent, for `timeout` seconds. Commits, or rolls
    back and returns LEAD_MOVED or AGENT_TAKEN.

    (The account's id and timeout come as plain values: the account object
    is expired by the time a pass places, and re-reading it would add a
    query inside the write.)
    """
    agent = lead_plan.chosen
    params = prefixed(
        _P,
        dict(
            account_id=account_id,
            lead_id=lead.id,
            agent_id=agent.id,
            round=lead.round,
            state=OfferState.PENDING,
            reason="owner" if agent.is_owner else "turn",
            candidates=lead_plan.candidates,
        ),
    )
    exhausted = lead.exhausted_at is not None
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            outcome = _write_offer_at_once(exhausted, params, timeout)
        else:
            outcome = _write_offer_in_steps(exhausted, params, timeout)
        if isinstance(outcome, str):
            db.session.rollback()
            return outcome
        db.session.commit()
    except IntegrityError:
        # A rival routing gave this agent an offer first.
        db.session.rollback()
        return AGENT_TAKEN
    offer_id, now = outcome
    return Placed(
        offer_id=offer_id,
        agent_id=agent.id,
        offered_at=now,
        expires_at=now + timedelta(seconds=timeout),
    )


_P = "p_"
_OFFER_COLUMNS = (
    "account_id",
    "lead_id",
    "agent_id",
    "round",
    "state",
    "reason",
    "candidates",
    "offered_at",
    "expires_at",
)


def _param(column: Column) -> BindParameter:
    return column_param(column, _P)


@cache
def _still_queued(exhausted: bool) -> tuple[ColumnElement[bool], ...]:
    """The lead is still where the plan saw it (queued, same round), and the
    agent has not declined it meanwhile: plans are read without locks, and a
    stale one must not ask them again. (Within the round, or in any round
    once every round was declined: `exhausted`.)"""
    leads, offers = Lead.__table__, Offer.__table__
    declined = exists().where(
        offers.c.lead_id == _param(offers.c.lead_id),
        offers.c.agent_id == _param(offers.c.agent_id),
        offers.c.state.in_(ENDED_WITHOUT_OWNER),
        true() if exhausted else offers.c.round == _param(offers.c.round),
    )
    return (
        leads.c.id == _param(offers.c.lead_id),
        leads.c.state == LeadState.QUEUED,
        leads.c.round == _param(offers.c.round),
        ~declined,
    )


@cache
def _move_lead(exhausted: bool) -> Update:
    return (
        update(Lead.__table__)
        .where(*_still_queued(exhausted))
        .values(state=LeadState.OFFERED)
    )


# The agent's turn, if they are still switched on: a plan read before they
# switched off (the router's roster, kept between passes) must not place an
# offer that their switching off could no longer withdraw.
_STAMP_TURN = (
    update(AgentState.__table__)
    .where(
        AgentState.__table__.c.user_id == _param(Offer.__table__.c.agent_id),
        AgentState.__table__.c.available.is_(True),
    )
    .values(last_offer_at=_param(Offer.__table__.c.offered_at))
)
_INSERT_OFFER = (
    insert(Offer.__table__)
    .values({name: _param(Offer.__table__.c[name]) for name in _OFFER_COLUMNS})
    .returning(Offer.__table__.c.id)
)


def _stamped(params: dict[str, Any], now: datetime, timeout: int) -> dict[str, Any]:
    """The placement's parameters with the offer's time and deadline."""
    return {
        **params,
        **prefixed(
            _P, dict(offered_at=now, expires_at=now + timedelta(seconds=timeout))
        ),
    }


def _write_offer_in_steps(
    exhausted: bool, params: dict[str, Any], timeout: int
) -> tuple[int, datetime] | str:
    """SQLite: the placement's writes one by one; the offer's id and time
    (LEAD_MOVED or AGENT_TAKEN when the caller must roll back)."""
    if not db.session.execute(_move_lead(exhausted), params).rowcount:
        return LEAD_MOVED
    # Stamped now, not when planning began nor before this transaction
    # waited for SQLite's write lock: the agent gets the whole timeout.
    now = utcnow()
    params = _stamped(params, now, timeout)
    offer_id = db.session.execute(_INSERT_OFFER, params).scalar_one()
    still_on = db.session.execute(_STAMP_TURN, params).rowcount
    return (offer_id, now) if still_on else AGENT_TAKEN


@cache
def _placement_at_once(exhausted: bool) -> Select:
    """PostgreSQL: the three writes as one statement, each running only if
    the one before it wrote: the lead moves, then the agent's turn is
    stamped, then the offer is inserted."""
    offers = Offer.__table__
    moved = _move_lead(exhausted).returning(Lead.__table__.c.id).cte("moved")
    still_on = (
        _STAMP_TURN.where(exists(select(moved.c.id)))
        .returning(AgentState.__table__.c.user_id)
        .cte("still_on")
    )
    inserted = (
        insert(offers)
        .from_select(
            list(_OFFER_COLUMNS),
            select(*(_param(offers.c[name]) for name in _OFFER_COLUMNS)).where(
                exists(select(still_on.c.user_id))
            ),
            include_defaults=False,
        )
        .returning(offers.c.id)
        .cte("inserted")
    )
    return select(
        exists(select(moved.c.id)).label("moved"),
        select(inserted.c.id).scalar_subquery().label("offer_id"),
    )


def _write_offer_at_once(
    exhausted: bool, params: dict[str, Any], timeout: int
) -> tuple[int, datetime] | str:
    """PostgreSQL: `_placement_at_once`, one round trip instead of three.
    (Row locks make no writer wait for another's unrelated rows, so stamping
    before the statement costs the agent nothing.)"""
    now = utcnow()
    row = db.session.execute(
        _placement_at_once(exhausted), _stamped(params, now, timeout)
    ).one()
    if not row.moved:
        return LEAD_MOVED
    return (row.offer_id, now) if row.offer_id is not None else AGENT_TAKEN


# ------------------------------------------------- after the commit


def after_offer(placed: Placed, card: OfferCard | None = None) -> None:
    """Push the offer to its agent (after commit). With the pop-up's facts
    at hand (`card`), nothing is read back.

    No expiry job is scheduled: rq's scheduler looks for due jobs once a
    second, so the worker's expiry sweep (every half second) expired the
    offers first, and scheduling a job per offer and unscheduling it on
    every answer cost CPU for nothing."""
    try:
        card = card or push.card_of(placed.offer_id)
        if card is not None:
            push.offer(card)
    except Exception:
        # The agent re-receives it on reconnect; the deadline still holds.
        log.exception("pushing offer %s failed", placed.offer_id)
    signals.send(
        signals.offer_changed,
        agent_id=placed.agent_id,
        offer_id=placed.offer_id,
        state="pending",
    )
