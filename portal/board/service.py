"""What the live roulette board shows a supervisor about their scope: each
agent's state (available, answering an offer and until when, away,
offline), the leads waiting with how long, and the last hour's offers.

Agents are the roulette's own receivers (roulette.pool.receivers), within
the people the viewer leads (contacts.scope.led_member_ids) unless they see
everything; online is the realtime presence the router uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.contacts import scope
from portal.extensions import db
from portal.models import (
    Account,
    Contact,
    Department,
    Lead,
    LeadState,
    Offer,
    ProcessMode,
    User,
)
from portal.models.base import utcnow
from portal.models.roulette import OfferState
from portal.realtime import presence
from portal.roulette.pool import receivers

WAITING_ROWS = 50
RECENT_OFFERS = 20

AVAILABLE = "available"
ANSWERING = "answering"
AWAY = "away"
OFFLINE = "offline"


@dataclass(frozen=True)
class AgentRow:
    user_id: int
    name: str
    state: str
    offer_expires_at: datetime | None


@dataclass(frozen=True)
class WaitingRow:
    lead_id: int
    contact_id: int
    contact_name: str
    department: str | None
    source: str | None
    since: datetime


@dataclass(frozen=True)
class OfferRow:
    agent: str
    state: str
    offered_at: datetime
    reason: str | None  # why it was declined, when the agent said


@dataclass
class Board:
    agents: list[AgentRow]
    waiting: list[WaitingRow]
    offers: list[OfferRow]
    offer_counts: Counter
    now: datetime

    def count(self, state: str) -> int:
        return sum(1 for agent in self.agents if agent.state == state)


def _agents(viewer: User, account: Account, now: datetime) -> list[AgentRow]:
    query = receivers(account.process_mode == ProcessMode.HYBRID)
    if not scope.sees_everything(viewer):
        query = query.where(User.id.in_(scope.led_member_ids(viewer)))
    rows = db.session.execute(query, {"account_id": account.id}).all()
    live = presence.live_user_ids(account.id)
    pending = dict(
        db.session.execute(
            select(Offer.agent_id, Offer.expires_at).where(
                Offer.account_id == account.id,
                Offer.state == OfferState.PENDING,
                Offer.agent_id.in_([row.id for row in rows]),
            )
        ).all()
    )
    agents = []
    for row in rows:
        if row.id in pending:
            state = ANSWERING
        elif row.id not in live:
            state = OFFLINE
        elif row.available:
            state = AVAILABLE
        else:
            state = AWAY
        agents.append(AgentRow(row.id, row.name, state, pending.get(row.id)))
    order = {ANSWERING: 0, AVAILABLE: 1, AWAY: 2, OFFLINE: 3}
    return sorted(agents, key=lambda a: (order[a.state], a.name.lower()))


def _waiting(viewer: User, account: Account) -> list[WaitingRow]:
    query = (
        select(
            Lead.id,
            Lead.contact_id,
            Contact.name,
            Department.name,
            Lead.source,
            Lead.created_at,
        )
        .join(Contact, Contact.id == Lead.contact_id)
        .outerjoin(Department, Department.id == Lead.department_id)
        .where(
            Lead.account_id == account.id,
            Lead.state == LeadState.QUEUED,
            scope.visible_clause(viewer),
        )
        .order_by(Lead.created_at, Lead.id)
        .limit(WAITING_ROWS)
    )
    return [WaitingRow(*row) for row in db.session.execute(query)]


def _offers(viewer: User, account: Account, now: datetime) -> tuple[list, Counter]:
    query = (
        select(User.name, Offer.state, Offer.offered_at, Offer.decline_reason)
        .join(User, User.id == Offer.agent_id)
        .where(
            Offer.account_id == account.id,
            Offer.offered_at >= now - timedelta(hours=1),
        )
        .order_by(Offer.id.desc())
    )
    if not scope.sees_everything(viewer):
        query = query.where(Offer.agent_id.in_(scope.led_member_ids(viewer)))
    rows = db.session.execute(query).all()
    counts = Counter(row.state for row in rows)
    recent = [OfferRow(*row) for row in rows[:RECENT_OFFERS]]
    return recent, counts


def board(viewer: User, account: Account) -> Board:
    now = utcnow()
    offers, counts = _offers(viewer, account, now)
    return Board(
        agents=_agents(viewer, account, now),
        waiting=_waiting(viewer, account),
        offers=offers,
        offer_counts=counts,
        now=now,
    )
