"""Routing: offering waiting leads to free agents, one lead or a batch.

The promise: a lead that can be offered is offered, to the agent the choice
(`portal.roulette.choice`) picks, and a collision with a rival routing only
moves on to the next agent in turn (`place_in_turn`, the one retry loop of
both paths). A lead nobody can take stays queued with its reasons on
record. `route_soon` is the entry point after any commit that may let a
lead be offered: it wakes the router (`portal.roulette.lease`) or, when
none runs, routes right here.

Routing reads are not locked: two leads may both pick the same free agent,
and the unique index lets exactly one of them have her.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from redis import RedisError
from sqlalchemy import Integer, Row, bindparam, select, update

from portal.database import reads_outside_transaction
from portal.extensions import db
from portal.models import Account, AgentState, Contact, Lead, LeadState, User
from portal.models.base import utcnow
from portal.realtime import presence
from portal.roulette import lease
from portal.roulette.choice import (
    Plan,
    Pool,
    declined_by,
    evaluate,
    may_start_next_round,
)
from portal.roulette.placement import LEAD_MOVED, Placed, after_offer, place
from portal.roulette.pool import (
    SCAN_LIMIT,
    RosterCache,
    declined_of,
    has_pending,
    may_take_a_lead,
    plan,
    read_pool,
    waiting_leads_for,
)
from portal.roulette.push import OfferCard

log = logging.getLogger(__name__)

# Attempts to place one lead when rival routings keep taking the chosen agent.
MAX_ATTEMPTS = 8
# How many waiting leads one dispatch looks at, oldest first.
DISPATCH_BATCH = 200
# What route_soon answers when a router took the work.
HANDED_TO_ROUTER = "router"


def place_in_turn(
    lead: Lead | Row,
    lead_plan: Plan,
    *,
    account_id: int,
    timeout: int,
    pool: Pool | None = None,
    card: Callable[[Placed], OfferCard] | None = None,
) -> Placed | None:
    """Offer the lead to the plan's chosen agent and, while rival routings
    take the chosen one first, to the next in turn. Returns the offer
    (pushed), or None when the lead moved on or nobody in the plan was
    left. `pool` (a batch's) learns who became busy; `card` builds
    the pop-up from what the caller read (else it is read back)."""
    while lead_plan.chosen is not None:
        agent_id = lead_plan.chosen.id
        outcome = place(lead, lead_plan, account_id=account_id, timeout=timeout)
        if isinstance(outcome, Placed):
            after_offer(outcome, card(outcome) if card is not None else None)
            if pool is not None:
                pool.take(agent_id, outcome.offered_at)
            return outcome
        if outcome == LEAD_MOVED:
            return None
        if pool is not None:
            pool.taken_elsewhere(agent_id)
        lead_plan.next_choice()
    return None


def route_lead(lead_id: int) -> Placed | None:
    """Offer a queued lead to the next agent, or leave it waiting.

    Commits. Returns the new offer (already pushed) or None when the lead
    waits (nobody free, every round declined, or it is no longer queued).
    """
    for _attempt in range(MAX_ATTEMPTS):
        lead = db.session.get(Lead, lead_id, populate_existing=True)
        if lead is None or lead.state != LeadState.QUEUED:
            db.session.rollback()
            return None
        account = db.session.get(Account, lead.account_id)
        if not account.roulette_enabled:
            db.session.rollback()
            return None
        # Read now: a failed placement's rollback expires the account.
        account_id, timeout = account.id, account.roulette_offer_timeout
        now = utcnow()
        chosen_plan = plan(account, lead, now)
        if chosen_plan.chosen is None:
            if _next_round(account, lead, chosen_plan, now):
                continue
            _record_reasons(_changed_reasons({lead.id: chosen_plan.candidates}))
            db.session.rollback()
            return None
        placed = place_in_turn(
            lead, chosen_plan, account_id=account_id, timeout=timeout
        )
        if placed is not None:
            return placed
    log.warning("lead %s: gave up routing after %d collisions", lead_id, MAX_ATTEMPTS)
    return None


def _next_round(account: Account, lead: Lead, lead_plan: Plan, now: datetime) -> bool:
    """Every online, free candidate declined this round: start the next round
    (True) or, after the last, park the lead for agents who never saw it."""
    if not may_start_next_round(lead, lead_plan):
        return False
    if lead.round < account.roulette_rounds:
        db.session.execute(
            update(Lead)
            .where(
                Lead.id == lead.id,
                Lead.round == lead.round,
                Lead.state == LeadState.QUEUED,
            )
            .values(round=Lead.round + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return True
    db.session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.exhausted_at.is_(None))
        .values(exhausted_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return True  # evaluate once more: agents who never saw it may be free


def dispatch(
    account: Account,
    limit: int = DISPATCH_BATCH,
    rosters: RosterCache | None = None,
    tick: Callable[[], None] | None = None,
) -> int:
    """Offer the oldest waiting leads to the free agents; returns offers made.

    One read of the pool serves the whole batch: each placed offer marks its
    agent busy in memory, and a lead none of whose candidates is free is
    passed over without planning (that is most of the queue while everyone
    is answering). The router runs this after every wake-up; without a
    router, the sweep does.
    """
    reads_outside_transaction(db.session)
    if not account.roulette_enabled:
        return 0
    # Read before the snapshot ends (which expires the account object).
    account_id, timeout = account.id, account.roulette_offer_timeout
    now = utcnow()
    waiting = db.session.execute(
        _WAITING, {"account_id": account_id, "limit": limit}
    ).all()
    if not waiting:
        db.session.rollback()
        if rosters is not None:
            rosters.free_after.pop(account_id, None)
        return 0
    roster = rosters.roster(account) if rosters is not None else None
    pool = read_pool(account, now, whole=True, roster=roster)
    declined_rows: dict[int, list[tuple[int, int]]] = {}
    for row in declined_of([lead.id for lead in waiting]):
        declined_rows.setdefault(row.lead_id, []).append((row.agent_id, row.round))
    db.session.rollback()  # end the read snapshot before placing
    placed = 0
    reasons: dict[int, list] = {}
    for lead in waiting:
        if tick is not None:
            tick()  # the router renews its lease through long passes
        candidates = pool.candidates(lead.department_id, lead.owner_id)
        if not (candidates & pool.free) and lead.routed:
            continue  # nobody could take it now; its reasons are on record
        declined = declined_by(
            declined_rows.get(lead.id, ()), lead.round, lead.exhausted_at is not None
        )
        lead_plan = evaluate(pool, lead.department_id, lead.owner_id, declined)
        if lead_plan.chosen is None:
            if may_start_next_round(lead, lead_plan):
                # Rare: the single-lead path starts the round and routes.
                offer = route_lead(lead.id)
                if offer is not None:
                    pool.take(offer.agent_id, utcnow())
                    placed += 1
            else:
                reasons[lead.id] = lead_plan.candidates
            continue
        if place_in_turn(
            lead,
            lead_plan,
            account_id=account_id,
            timeout=timeout,
            pool=pool,
            card=lambda offer, lead=lead: _card(offer, pool, lead),
        ):
            placed += 1
    _record_reasons(_changed_reasons(reasons))
    if rosters is not None:
        rosters.free_after[account_id] = len(pool.free)
    return placed


# The waiting leads a dispatch looks at, oldest first (built once: see
# `portal.roulette.pool`).
_WAITING = (
    select(
        Lead.id,
        Lead.round,
        Lead.exhausted_at,
        Lead.department_id,
        # Whether its reasons are on record, not the reasons: a long queue's
        # reasons (a list per lead of every agent) cost more to decode on
        # every pass than the rest of the pass.
        Lead.routing.is_not(None).label("routed"),
        Lead.source,
        Lead.message,
        Contact.owner_id,
        Contact.name,
    )
    .join(Contact, Contact.id == Lead.contact_id)
    .where(
        Lead.account_id == bindparam("account_id", type_=Integer),
        Lead.state == LeadState.QUEUED,
    )
    .order_by(Lead.id)
    .limit(bindparam("limit", type_=Integer))
)


def _card(placed: Placed, pool: Pool, lead: Row) -> OfferCard:
    """The pop-up, from what the dispatch read already."""
    return OfferCard(
        offer_id=placed.offer_id,
        lead_id=lead.id,
        agent_id=placed.agent_id,
        offered_at=placed.offered_at,
        expires_at=placed.expires_at,
        contact_name=lead.name,
        source=lead.source,
        message=lead.message,
        department_name=pool.roster.department_names.get(lead.department_id),
        language=pool.agents[placed.agent_id].language,
    )


def _reasons(candidates: list | None) -> list[tuple[int, str]]:
    return [(c["id"], c["reason"]) for c in candidates or ()]


def _changed_reasons(reasons: dict[int, list]) -> list[dict]:
    """The rows `_record_reasons` writes: the leads in `reasons` (lead id:
    candidates) whose reasons on record differ."""
    if not reasons:
        return []
    recorded = dict(
        db.session.execute(
            select(Lead.id, Lead.routing).where(Lead.id.in_(list(reasons)))
        ).all()
    )
    db.session.rollback()  # a read: end it before the write
    return [
        {"lead_id": lead_id, "routing": candidates}
        for lead_id, candidates in reasons.items()
        if _reasons(recorded.get(lead_id)) != _reasons(candidates)
    ]


def _record_reasons(reasons: list[dict]) -> None:
    """Keep why leads wait (shown on the contact's profile): one statement
    and one short write for the whole pass, whose reasons changed."""
    if not reasons:
        return
    table = Lead.__table__
    db.session.execute(
        update(table)
        .where(table.c.id == bindparam("lead_id"), table.c.state == LeadState.QUEUED)
        .values(routing=bindparam("routing")),
        reasons,
    )
    db.session.commit()


def route_soon(
    lead_id: int | None = None, agent_id: int | None = None
) -> Placed | str | None:
    """A committed change may let a lead be offered (a new or returned lead,
    a free agent): wake the router, or, none running, route here. Returns
    HANDED_TO_ROUTER, or the offer this call made of `lead_id` when it
    routed by itself (None: it made none)."""
    try:
        if lease.wake(lease.FOR_AGENT if agent_id is not None else lease.FOR_LEAD):
            return HANDED_TO_ROUTER
    except RedisError:
        # Redis is down: routing here is all we can do (it pushes nothing,
        # and the sweep catches up with what it misses).
        log.warning("could not wake the router; routing here")
    placed = route_lead(lead_id) if lead_id is not None else None
    if agent_id is not None:
        offer_to_agent(agent_id)
    return placed


def offer_to_agent(agent_id: int) -> Placed | None:
    """A free agent takes the oldest waiting lead they may have (arrival
    order). Routing still decides: owner priority may send the lead
    elsewhere, and then the next waiting lead is tried."""
    after = 0
    for _batch in range(3):
        agent = db.session.get(User, agent_id)
        if agent is None or not agent.is_active:
            return None
        state = db.session.get(AgentState, agent_id, populate_existing=True)
        if state is None or not state.available:
            return None
        if not presence.is_live(agent.account_id, agent_id):
            return None
        account = db.session.get(Account, agent.account_id)
        if not account.roulette_enabled or not may_take_a_lead(account, agent_id):
            return None
        waiting = waiting_leads_for(agent, after)
        db.session.rollback()  # end the read snapshot before routing
        if not waiting:
            return None
        for lead_id in waiting:
            if has_pending(agent_id):
                return None
            placed = route_lead(lead_id)
            if placed is not None and placed.agent_id == agent_id:
                return placed
        if len(waiting) < SCAN_LIMIT:
            return None
        # The next batch, not the same one again: leads the routing keeps
        # away from this agent must not hide the newer ones behind them.
        after = waiting[-1]
    return None
