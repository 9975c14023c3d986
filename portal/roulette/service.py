"""The lead roulette: every lead is offered to one online agent at a time.

What keeps each promise:
- A lead has at most one pending offer and an agent holds at most one: two
  partial unique indexes (`portal.models.roulette.Offer`). A routing attempt
  that collides rolls back and tries the next candidate.
- A decision has exactly one outcome: every transition of an offer is a
  conditional UPDATE on `state = 'pending'` (accept and decline also on the
  deadline, expiry on its passing).
- Nothing is lost: whenever an offer ends without an owner, the lead is
  committed back to "queued" before the next agent is tried, and the sweep
  (`sweep`, run by every worker) expires overdue offers and offers waiting
  leads to free agents even when a scheduled job or a push was lost.
- Pushes and jobs leave only after the commit that they describe.

Routing reads are not locked: two leads may both pick the same free agent,
and the unique index lets exactly one of them have her.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property

from flask_babel import lazy_gettext as _l
from redis import RedisError
from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.selectable import Select

from portal.contacts.service import log_assignment
from portal.database import column_param, prefixed, reads_outside_transaction
from portal.errors import Conflict, NotFound
from portal.extensions import db
from portal.models import (
    ENDED_WITHOUT_OWNER,
    Account,
    AgentState,
    AssignmentHow,
    Contact,
    ContactStatus,
    Department,
    Lead,
    Offer,
    OfferState,
    ProcessMode,
    Role,
    RolePermission,
    User,
    UserStatus,
)
from portal.models.base import utcnow
from portal.models.org import department_member
from portal.realtime import presence
from portal.redis_conn import get_redis
from portal.roulette import hours, push
from portal.roulette.push import Ended, OfferCard, ended_of

log = logging.getLogger(__name__)

RECEIVE = "leads.receive"
# Attempts to place one lead when rival routings keep taking the chosen agent.
MAX_ATTEMPTS = 8
# An agent who lets this many offers in a row run out is switched to
# unavailable: a lead should not wait a whole timeout on an empty chair.
AUTO_PAUSE_AFTER = 3
# How many waiting leads one free agent looks through at a time.
SCAN_LIMIT = 20
# How many waiting leads one dispatch looks at, oldest first.
DISPATCH_BATCH = 200


class Skip:
    """Why an agent was (not) chosen; stored in the offer's candidate list."""

    CHOSEN = "chosen"
    OFFLINE = "offline"
    PAUSED = "paused"
    BUSY = "busy"
    CAPACITY = "capacity"
    HOURS = "hours"
    DECLINED = "declined"


SKIP_LABELS = {
    Skip.CHOSEN: _l("chosen"),
    Skip.OFFLINE: _l("offline"),
    Skip.PAUSED: _l("not available"),
    Skip.BUSY: _l("answering another offer"),
    Skip.CAPACITY: _l("at the cap of open leads"),
    Skip.HOURS: _l("outside working hours"),
    Skip.DECLINED: _l("already declined this lead"),
}

REASON_LABELS = {
    "owner": _l("the contact's owner"),
    "turn": _l("longest wait since an offer"),
}


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass
class Agent:
    id: int
    name: str
    available: bool
    waiting_since: datetime
    is_owner: bool = False
    reason: str = ""
    language: str | None = None


@dataclass
class Plan:
    """One evaluation of a lead: everyone considered, and whom to ask."""

    agents: list[Agent]
    chosen: Agent | None

    @cached_property
    def candidates(self) -> list[dict]:
        return [
            {
                "id": a.id,
                "name": a.name,
                "reason": a.reason,
                "owner": a.is_owner,
            }
            for a in self.agents
        ]

    def any(self, reason: str) -> bool:
        return any(a.reason == reason for a in self.agents)

    def next_choice(self) -> Agent | None:
        """A rival routing took the chosen agent meanwhile: mark them busy and
        choose the next eligible one in turn order, without planning again."""
        if self.chosen is not None:
            self.chosen.reason = Skip.BUSY
        waiting = [a for a in self.agents if a.reason == "later"]
        self.chosen = waiting[0] if waiting else None
        if self.chosen is not None:
            self.chosen.reason = Skip.CHOSEN
        self.__dict__.pop("candidates", None)
        return self.chosen


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _receivers(account: Account):
    """Active users whose role may receive leads (hybrid mode: flagged ones)."""
    query = (
        select(
            User.id,
            User.name,
            User.language,
            AgentState.available,
            AgentState.available_changed_at,
            AgentState.last_offer_at,
        )
        .join(Role, Role.id == User.role_id)
        .join(
            RolePermission,
            and_(
                RolePermission.role_id == Role.id, RolePermission.permission == RECEIVE
            ),
        )
        .outerjoin(AgentState, AgentState.user_id == User.id)
        .where(User.account_id == account.id, User.status == UserStatus.ACTIVE)
    )
    if account.process_mode == ProcessMode.HYBRID:
        query = query.where(User.receives_web_leads.is_(True))
    return query


def _agent(row, is_owner: bool = False) -> Agent:
    since = max(
        _aware(row.last_offer_at) or _EPOCH, _aware(row.available_changed_at) or _EPOCH
    )
    return Agent(
        id=row.id,
        name=row.name,
        available=bool(row.available),
        waiting_since=since,
        is_owner=is_owner,
        language=row.language,
    )


def _open_leads(account: Account, agent_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(Lead.accepted_by_id, func.count())
        # Only while the agent still owns the contact: once it is handed to
        # someone else, the agent can no longer attend the lead, and it would
        # hold one of their places for good.
        .join(
            Contact,
            and_(
                Contact.id == Lead.contact_id,
                Contact.owner_id == Lead.accepted_by_id,
            ),
        )
        .where(
            Lead.account_id == account.id,
            Lead.accepted_by_id.in_(agent_ids),
            Lead.state == "assigned",
            Lead.attended_at.is_(None),
        )
        .group_by(Lead.accepted_by_id)
    )
    return {agent_id: count for agent_id, count in rows}


@dataclass
class Roster:
    """Who may receive an account's leads and where they sit: the half of the
    pool that changes slowly, which the router keeps between passes."""

    agents: dict[int, Agent]
    # Department id -> its receivers; None when read for one department
    # (every agent read belongs).
    members: dict[int, set[int]] | None
    department_names: dict[int, str]
    # (department id, working hours, time zone) of departments with hours.
    hours: list[tuple[int, dict, str]]


@dataclass
class Pool:
    """The routing state of one account, read once and used for many leads:
    its receivers, who is live, busy or at the cap, and which departments
    are closed now."""

    capacity: int
    roster: Roster
    live: set[int]
    busy: set[int]
    loads: dict[int, int]
    closed: set[int]

    @property
    def agents(self) -> dict[int, Agent]:
        return self.roster.agents

    def candidates(self, department_id: int | None, owner_id: int | None) -> set[int]:
        """Who could take a lead of this department: its receivers, plus the
        contact's owner wherever they sit (owner priority)."""
        members = self.roster.members
        if department_id is None or members is None:
            ids = set(self.agents)
        else:
            ids = set(members.get(department_id, ()))
        if owner_id in self.agents:
            ids.add(owner_id)
        return ids

    def is_free(self, agent_id: int) -> bool:
        """Live, switched on, holding no offer and below the cap."""
        agent = self.agents[agent_id]
        return (
            agent.available
            and agent_id in self.live
            and agent_id not in self.busy
            and not (self.capacity and self.loads.get(agent_id, 0) >= self.capacity)
        )

    def take(self, agent_id: int, now: datetime) -> None:
        """The agent was just offered a lead: busy, and last in turn."""
        self.busy.add(agent_id)
        self.agents[agent_id].waiting_since = now


def read_roster(
    account: Account,
    department_id: int | None = None,
    owner_id: int | None = None,
    *,
    whole: bool = False,
) -> Roster:
    """The receivers for a lead of `department_id` (and its contact's owner),
    or with `whole` those of every department at once (the router's)."""
    query = _receivers(account)
    if not whole and department_id is not None:
        members = select(department_member.c.user_id).where(
            department_member.c.department_id == department_id
        )
        if owner_id is not None:
            query = query.where(or_(User.id.in_(members), User.id == owner_id))
        else:
            query = query.where(User.id.in_(members))
    agents = {row.id: _agent(row) for row in db.session.execute(query)}
    membership: dict[int, set[int]] | None = None
    names: dict[int, str] = {}
    if whole:
        membership = {}
        if agents:
            rows = db.session.execute(
                select(
                    department_member.c.department_id, department_member.c.user_id
                ).where(department_member.c.user_id.in_(list(agents)))
            )
            for dept, user_id in rows:
                membership.setdefault(dept, set()).add(user_id)
        names = dict(
            db.session.execute(
                select(Department.id, Department.name).where(
                    Department.account_id == account.id
                )
            ).all()
        )
    return Roster(
        agents=agents,
        members=membership,
        department_names=names,
        hours=_department_hours(account.id),
    )


def read_pool(
    account: Account,
    now: datetime,
    department_id: int | None = None,
    owner_id: int | None = None,
    *,
    whole: bool = False,
    roster: Roster | None = None,
) -> Pool:
    """The pool for a lead of `department_id` (or, `whole`, for any lead):
    the roster (given, or read now) and who is live, busy and loaded now."""
    if roster is None:
        roster = read_roster(account, department_id, owner_id, whole=whole)
    ids = list(roster.agents)
    busy: set[int] = set()
    live: set[int] = set()
    if ids:
        live = presence.live_user_ids(account.id)
        busy = set(
            db.session.scalars(
                select(Offer.agent_id).where(
                    Offer.account_id == account.id, Offer.state == OfferState.PENDING
                )
            )
        )
    loads = _open_leads(account, ids) if ids and account.roulette_capacity else {}
    return Pool(
        capacity=account.roulette_capacity,
        roster=roster,
        live=live,
        busy=busy,
        loads=loads,
        closed=_closed_of(roster.hours, now),
    )


# Bumped after every change of an agent's switch: the router's cached roster
# (`RosterCache`) is stale from then on.
ROSTER_VERSION = "roleta:roster:version"
# And re-read at least this often (users, roles and departments edited).
ROSTER_SECONDS = 2.0


def roster_changed() -> None:
    """An agent switched on or off: routers must read the roster again."""
    try:
        get_redis().incr(ROSTER_VERSION)
    except RedisError:
        log.warning("could not mark the roster changed; it expires by itself")


class RosterCache:
    """The router's rosters between passes, one per account.

    Kept while the version counter stands still and for at most
    ROSTER_SECONDS. Offers the router makes update its agents' turn order in
    place, as `_place` writes it to the database.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, bytes | None, Roster]] = {}
        # Free agents each account had left after the router's last pass
        # (absent: unknown, e.g. the queue was empty).
        self.free_after: dict[int, int] = {}

    def nobody_free(self) -> bool:
        """Whether the last pass left no agent free in any account."""
        return bool(self.free_after) and not any(self.free_after.values())

    def roster(self, account: Account) -> Roster:
        version = get_redis().get(ROSTER_VERSION)
        entry = self._entries.get(account.id)
        now = time.monotonic()
        if entry is not None:
            read_at, read_version, roster = entry
            if read_version == version and now - read_at < ROSTER_SECONDS:
                return roster
        roster = read_roster(account, whole=True)
        self._entries[account.id] = (now, version, roster)
        return roster


def evaluate(
    pool: Pool,
    department_id: int | None,
    owner_id: int | None,
    declined: set[int] | frozenset[int],
) -> Plan:
    """Every candidate for one lead, with why they are (not) asked; picks
    the contact's owner when eligible, else the longest wait."""
    agents = []
    open_now = department_id is None or department_id not in pool.closed
    for agent_id in pool.candidates(department_id, owner_id):
        row = pool.agents[agent_id]
        agent = Agent(
            id=agent_id,
            name=row.name,
            available=row.available,
            waiting_since=row.waiting_since,
            is_owner=agent_id == owner_id,
        )
        if agent_id not in pool.live:
            agent.reason = Skip.OFFLINE
        elif not agent.available:
            agent.reason = Skip.PAUSED
        elif not open_now:
            agent.reason = Skip.HOURS
        elif agent_id in declined:
            agent.reason = Skip.DECLINED
        elif agent_id in pool.busy:
            agent.reason = Skip.BUSY
        elif pool.capacity and pool.loads.get(agent_id, 0) >= pool.capacity:
            agent.reason = Skip.CAPACITY
        agents.append(agent)
    eligible = [a for a in agents if not a.reason]
    chosen = None
    owners = [a for a in eligible if a.is_owner]
    if owners:
        chosen = owners[0]
    elif eligible:
        chosen = min(eligible, key=lambda a: (a.waiting_since, a.id))
    if chosen is not None:
        chosen.reason = Skip.CHOSEN
    for agent in eligible:
        if agent is not chosen:
            # Eligible but not their turn: they wait behind the chosen one.
            agent.reason = "later"
    agents.sort(key=lambda a: (not a.is_owner, a.waiting_since, a.id))
    return Plan(agents=agents, chosen=chosen)


def _declined_query(lead_ids: list[int]):
    return select(Offer.lead_id, Offer.agent_id, Offer.round).where(
        Offer.lead_id.in_(lead_ids), Offer.state.in_(ENDED_WITHOUT_OWNER)
    )


def _declined_by(rows, lead_round: int, exhausted: bool) -> set[int]:
    """Agents who passed on the lead this round (after the last round: ever)."""
    return {agent for agent, round_ in rows if exhausted or round_ == lead_round}


def plan(account: Account, lead: Lead, now: datetime | None = None) -> Plan:
    """Evaluate every candidate for the lead's current round; pick one."""
    now = now or utcnow()
    owner_id = db.session.scalar(
        select(Contact.owner_id).where(Contact.id == lead.contact_id)
    )
    pool = read_pool(account, now, lead.department_id, owner_id)
    if not pool.agents:
        return Plan(agents=[], chosen=None)
    rows = db.session.execute(_declined_query([lead.id]))
    declined = _declined_by(
        [(r.agent_id, r.round) for r in rows], lead.round, lead.exhausted_at is not None
    )
    return evaluate(pool, lead.department_id, owner_id, declined)


# ---------------------------------------------------------------- routing


@dataclass
class Placed:
    """An offer just committed; push and schedule it after the commit."""

    offer_id: int
    agent_id: int
    offered_at: datetime
    expires_at: datetime


def route_lead(lead_id: int) -> Placed | None:
    """Offer a queued lead to the next agent, or leave it waiting.

    Commits. Returns the new offer (already pushed and its expiry scheduled)
    or None when the lead waits (nobody free, every round declined, or it is
    no longer queued).
    """
    for _attempt in range(MAX_ATTEMPTS):
        lead = db.session.get(Lead, lead_id, populate_existing=True)
        if lead is None or lead.state != "queued":
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
        while chosen_plan.chosen is not None:
            placed = _place(lead, chosen_plan, account_id=account_id, timeout=timeout)
            if isinstance(placed, Placed):
                after_offer(placed)
                return placed
            if placed == LEAD_MOVED:
                break
            chosen_plan.next_choice()
    log.warning("lead %s: gave up routing after %d collisions", lead_id, MAX_ATTEMPTS)
    return None


def _reasons(candidates: list | None) -> list:
    return [(c["id"], c["reason"]) for c in candidates or ()]


def _next_round(account: Account, lead: Lead, lead_plan: Plan, now: datetime) -> bool:
    """Every online, free candidate declined this round: start the next round
    (True) or, after the last, park the lead for agents who never saw it."""
    if lead.exhausted_at is not None or not lead_plan.any(Skip.DECLINED):
        return False
    if lead_plan.any(Skip.BUSY):
        return False  # someone who has not declined will be free soon
    if lead.round < account.roulette_rounds:
        db.session.execute(
            update(Lead)
            .where(Lead.id == lead.id, Lead.round == lead.round, Lead.state == "queued")
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


# What _place says when it placed nothing: the lead moved on (stop), or a
# rival routing took the agent (try the next one).
LEAD_MOVED = "lead moved"
AGENT_TAKEN = "agent taken"


def _place(
    lead: Lead, lead_plan: Plan, *, account_id: int, timeout: int
) -> Placed | str:
    """Offer the lead to the plan's chosen agent, for `timeout` seconds.
    (The account's id and timeout come as plain values: the account object
    is expired by the time a pass places, and re-reading it would add a
    query inside the write.)

    Three writes, all or none: the lead moves to "offered" (if it is still
    where the plan saw it, see `_still_queued`), the agent's turn is stamped
    (if they are still switched on), the offer is inserted.
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


# The placement's statements are built once, their values passed as
# parameters named p_* (see `column_param`): building them per placement
# cost more than running them.
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


def _param(column):
    return column_param(column, _P)


@cache
def _still_queued(exhausted: bool) -> tuple:
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
        leads.c.state == "queued",
        leads.c.round == _param(offers.c.round),
        ~declined,
    )


@cache
def _move_lead(exhausted: bool) -> Update:
    return (
        update(Lead.__table__).where(*_still_queued(exhausted)).values(state="offered")
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


def _stamped(params: dict, now: datetime, timeout: int) -> dict:
    """The placement's parameters with the offer's time and deadline."""
    return {
        **params,
        **prefixed(
            _P, dict(offered_at=now, expires_at=now + timedelta(seconds=timeout))
        ),
    }


def _write_offer_in_steps(
    exhausted: bool, params: dict, timeout: int
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
    exhausted: bool, params: dict, timeout: int
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


def _expiry_job_id(offer_id: int) -> str:
    return f"roleta-expire-offer-{offer_id}"


def _unschedule_expiry(offer_id: int) -> None:
    """The offer was answered or withdrawn: its expiry job has nothing to do.
    (Not for an expired offer: the job may be the one expiring it.)"""
    from portal.queue import cancel_scheduled

    try:
        cancel_scheduled(_expiry_job_id(offer_id))
    except RedisError:
        log.warning("could not unschedule the expiry of offer %s", offer_id)


def after_offer(placed: Placed, card=None) -> None:
    """Push the offer to its agent and schedule its expiry (after commit).
    With the pop-up's facts at hand (`push.OfferCard`), nothing is read back."""
    from portal.queue import enqueue_at

    try:
        if card is not None:
            push.placed_offer(placed, card)
        else:
            push.offer(placed.offer_id)
    except Exception:
        # The agent re-receives it on reconnect; the deadline still holds.
        log.exception("pushing offer %s failed", placed.offer_id)
    try:
        enqueue_at(
            placed.expires_at,
            "jobs.roulette.expire_offer",
            placed.offer_id,
            job_id=_expiry_job_id(placed.offer_id),
        )
    except Exception:
        # The sweep expires it regardless.
        log.exception("scheduling the expiry of offer %s failed", placed.offer_id)


# What route_soon answers when a router took the work.
HANDED_TO_ROUTER = "router"


def route_soon(
    lead_id: int | None = None, agent_id: int | None = None
) -> Placed | str | None:
    """A committed change may let a lead be offered (a new or returned lead,
    a free agent): wake the router, or, none running, route here. Returns
    HANDED_TO_ROUTER, or the offer this call made of `lead_id` when it
    routed by itself (None: it made none)."""
    from portal.roulette import router

    try:
        if router.wake(router.FOR_AGENT if agent_id is not None else router.FOR_LEAD):
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
        if not account.roulette_enabled or not _may_take_a_lead(account, agent_id):
            return None
        waiting = _waiting_leads_for(agent, after)
        db.session.rollback()  # end the read snapshot before routing
        if not waiting:
            return None
        for lead_id in waiting:
            if _has_pending(agent_id):
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


def _may_take_a_lead(account: Account, agent_id: int) -> bool:
    """Whether any routing could choose the agent now (a receiver, below
    the cap); if not, scanning the queue for them is wasted work."""
    if db.session.scalar(_receivers(account).where(User.id == agent_id)) is None:
        return False
    if account.roulette_capacity:
        held = _open_leads(account, [agent_id]).get(agent_id, 0)
        return held < account.roulette_capacity
    return True


def _department_hours(account_id: int) -> list[tuple[int, dict, str]]:
    """(id, working hours, time zone) of the departments that have hours."""
    rows = db.session.execute(
        select(Department.id, Department.working_hours, Department.timezone).where(
            Department.account_id == account_id,
            Department.working_hours.is_not(None),
        )
    )
    return [tuple(row) for row in rows]


def _closed_of(department_hours: list[tuple[int, dict, str]], now: datetime) -> set:
    return {
        dept
        for dept, working_hours, timezone in department_hours
        if not hours.is_open(working_hours, timezone, now)
    }


def _closed_departments(account_id: int, now: datetime) -> list[int]:
    """Departments outside their working hours now: their leads wait for
    everyone, so a free agent's scan skips them (a night's pile of them
    would otherwise fill every batch and hide the open departments' leads)."""
    return list(_closed_of(_department_hours(account_id), now))


def _has_pending(agent_id: int) -> bool:
    return (
        db.session.scalar(
            select(Offer.id).where(
                Offer.agent_id == agent_id, Offer.state == OfferState.PENDING
            )
        )
        is not None
    )


def _waiting_leads_for(agent: User, after: int = 0) -> list[int]:
    """The oldest waiting leads (ids above `after`) that routing could give
    this agent: in their departments, without one, or of their contacts."""
    departments = select(department_member.c.department_id).where(
        department_member.c.user_id == agent.id
    )
    closed = _closed_departments(agent.account_id, utcnow())
    declined = exists().where(
        Offer.lead_id == Lead.id,
        Offer.agent_id == agent.id,
        Offer.state.in_(ENDED_WITHOUT_OWNER),
        or_(Lead.exhausted_at.is_not(None), Offer.round == Lead.round),
    )
    owned = select(Contact.id).where(Contact.owner_id == agent.id)
    return list(
        db.session.scalars(
            select(Lead.id)
            .where(
                Lead.account_id == agent.account_id,
                Lead.state == "queued",
                Lead.id > after,
                or_(
                    Lead.department_id.is_(None),
                    Lead.department_id.in_(departments),
                    Lead.contact_id.in_(owned),
                ),
                or_(Lead.department_id.is_(None), Lead.department_id.not_in(closed)),
                ~declined,
            )
            .order_by(Lead.id)
            .limit(SCAN_LIMIT)
        )
    )


# -------------------------------------------------------------- decisions


def _own_offer(user: User, offer_id: int) -> Offer:
    """The caller's offer, or NotFound (someone else's offers do not exist)."""
    try:
        offer = db.session.get(Offer, int(offer_id), populate_existing=True)
    except (TypeError, ValueError):
        offer = None
    if (
        offer is None
        or offer.agent_id != user.id
        or offer.account_id != user.account_id
    ):
        raise NotFound()
    return offer


_REFUSALS = {
    OfferState.ACCEPTED: _l("You already accepted this lead."),
    OfferState.DECLINED: _l("You already declined this lead."),
    OfferState.EXPIRED: _l("Too late: the time to answer this offer ran out."),
    OfferState.CANCELLED: _l("This offer was withdrawn."),
}


def _refuse(offer_id: int) -> None:
    """Raise the Conflict that explains why a decision did not apply."""
    offer = db.session.get(Offer, offer_id, populate_existing=True)
    if offer.state == OfferState.PENDING:
        # Past its deadline and not yet expired by the job: expire it now,
        # so the lead moves on without waiting for the worker.
        expire_offer(offer.id)
        raise Conflict(str(_REFUSALS[OfferState.EXPIRED]))
    raise Conflict(str(_REFUSALS[OfferState(offer.state)]))


def _decide(offer_id: int, state: OfferState, now: datetime) -> bool:
    return bool(
        db.session.execute(
            update(Offer)
            .where(
                Offer.id == offer_id,
                Offer.state == OfferState.PENDING,
                Offer.expires_at > now,
            )
            .values(state=state, decided_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _seconds(since: datetime | None, until: datetime) -> int | None:
    since = _aware(since)
    return None if since is None else max(0, int((until - since).total_seconds()))


def accept(user: User, offer_id: int) -> Ended:
    """The agent takes the lead: they become the contact's owner.

    Raises NotFound (not their offer) or Conflict (decided, expired or
    withdrawn; the message says which).
    """
    offer = _own_offer(user, offer_id)
    # Read before the first write: a write transaction holds SQLite's one
    # write lock until it commits. A hand assignment committed after this
    # read is caught by the contact UPDATE's guard below.
    lead, contact = db.session.execute(
        select(Lead, Contact)
        .join(Contact, Contact.id == Lead.contact_id)
        .where(Lead.id == offer.lead_id)
        .execution_options(populate_existing=True)
    ).one()
    previous = db.session.get(User, contact.owner_id) if contact.owner_id else None
    now = utcnow()
    if not _decide(offer.id, OfferState.ACCEPTED, now):
        db.session.rollback()
        _refuse(offer.id)
    db.session.execute(
        update(Lead)
        .where(Lead.id == lead.id)
        .values(
            state="assigned",
            accepted_at=now,
            accepted_by_id=user.id,
            speed_to_lead_seconds=_seconds(lead.created_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if _assigned_by_hand_since(contact, offer, user):
        _withdraw_for_hand_assignment(contact.id)
    if previous is None or previous.id != user.id:
        values: dict = {
            "owner_id": user.id,
            "assigned_at": now,
            "last_activity_at": now,
        }
        if contact.status == ContactStatus.NEW:
            values["status"] = ContactStatus.ASSIGNED
        # Taking a lead is not "attending" it: a new lead of a returning
        # customer waits for a fresh first response.
        values["attended_at"] = None
        values["first_response_seconds"] = None
        # Guarded on the owner we read: a hand assignment committed since
        # must not be overwritten (see _assigned_by_hand_since).
        moved = db.session.execute(
            update(Contact)
            .where(
                Contact.id == contact.id,
                Contact.owner_id.is_(None)
                if previous is None
                else Contact.owner_id == previous.id,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not moved:
            _withdraw_for_hand_assignment(contact.id)
        log_assignment(contact, previous, user, user, AssignmentHow.ROULETTE)
    ended = _ended(offer, OfferState.ACCEPTED, now, contact, user)
    db.session.commit()
    _after_decision(ended)
    return ended


def _ended(
    offer: Offer, state: OfferState, now: datetime, contact: Contact, agent: User
) -> Ended:
    """What the end of the decided offer shows (taken before the commit
    expires the rows it comes from)."""
    return Ended(
        id=offer.id,
        lead_id=offer.lead_id,
        agent_id=offer.agent_id,
        state=str(state),
        expires_at=offer.expires_at,
        decided_at=now,
        contact_id=contact.id,
        contact_name=contact.name,
        language=agent.language,
    )


def _assigned_by_hand_since(contact: Contact, offer: Offer, user: User) -> bool:
    """Whether someone gave the contact to another person after the offer was
    made. contacts.assign() commits the owner first and withdraws the offer
    right after (lead_assigned_by_hand); an accept in between must not take
    the contact from the person it was just handed to."""
    assigned_at = _aware(contact.assigned_at)
    return (
        contact.owner_id not in (None, user.id)
        and assigned_at is not None
        and assigned_at > _aware(offer.offered_at)
    )


def _withdraw_for_hand_assignment(contact_id: int) -> None:
    """Undo the accept, do the withdrawal the hand assignment is about to
    do (it is idempotent), and tell the agent. Raises Conflict."""
    db.session.rollback()
    owner_id = db.session.scalar(
        select(Contact.owner_id).where(Contact.id == contact_id)
    )
    if owner_id is not None:
        lead_assigned_by_hand(contact_id, owner_id)
    raise Conflict(str(_REFUSALS[OfferState.CANCELLED]))


def decline(user: User, offer_id: int) -> Ended:
    """The agent passes; the lead goes to the next candidate at once."""
    offer = _own_offer(user, offer_id)
    now = utcnow()
    if not _decide(offer.id, OfferState.DECLINED, now):
        db.session.rollback()
        _refuse(offer.id)
    _requeue(offer.lead_id)
    ended = ended_of(offer.id)
    db.session.commit()
    _after_decision(ended)
    return ended


def _requeue(lead_id: int) -> None:
    db.session.execute(
        update(Lead)
        .where(Lead.id == lead_id, Lead.state == "offered")
        .values(state="queued")
        .execution_options(synchronize_session=False)
    )


def expire_offer(offer_id: int, now: datetime | None = None) -> bool:
    """End an overdue offer as a decline; True when this call ended it.

    Safe to run twice and to race an accept: only one conditional UPDATE
    applies.
    """
    now = now or utcnow()
    ended = db.session.execute(
        update(Offer)
        .where(
            Offer.id == offer_id,
            Offer.state == OfferState.PENDING,
            Offer.expires_at <= now,
        )
        .values(state=OfferState.EXPIRED, decided_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not ended:
        db.session.rollback()
        return False
    offer = ended_of(offer_id)
    _requeue(offer.lead_id)
    db.session.commit()
    paused = _pause_if_absent(offer.agent_id)
    _after_decision(offer, agent_free=not paused)
    return True


def _pause_if_absent(agent_id: int) -> bool:
    """Switch off an agent whose last offers all ran out unanswered."""
    query = (
        select(Offer.state)
        .where(Offer.agent_id == agent_id)
        .order_by(Offer.id.desc())
        .limit(AUTO_PAUSE_AFTER)
    )
    switched_on = db.session.scalar(
        select(AgentState.available_changed_at).where(AgentState.user_id == agent_id)
    )
    if switched_on is not None:
        # Switching on again starts a new count: misses from before the last
        # pause must not switch the agent off after a single new one.
        query = query.where(Offer.offered_at >= switched_on)
    last = list(db.session.scalars(query))
    if len(last) < AUTO_PAUSE_AFTER or any(s != OfferState.EXPIRED for s in last):
        return False
    user = db.session.get(User, agent_id)
    if user is None:
        return False
    set_available(user, False, automatic=True)
    return True


def cancel_pending(agent_id: int) -> list[int]:
    """Withdraw the agent's pending offer (switch off, suspension) and pass
    its lead on. Returns the withdrawn offer ids."""
    now = utcnow()
    offers = list(
        db.session.scalars(
            select(Offer).where(
                Offer.agent_id == agent_id, Offer.state == OfferState.PENDING
            )
        )
    )
    withdrawn = []
    for offer in offers:
        ended = db.session.execute(
            update(Offer)
            .where(Offer.id == offer.id, Offer.state == OfferState.PENDING)
            .values(state=OfferState.CANCELLED, decided_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if ended:
            _requeue(offer.lead_id)
            withdrawn.append(offer.id)
    db.session.commit()
    for offer_id in withdrawn:
        _after_decision(ended_of(offer_id), agent_free=False)
    return withdrawn


def _after_decision(offer: Ended, agent_free: bool = True) -> None:
    """After the commit: tell the agent's tabs, route the lead on if it came
    back to the queue, and give the agent, now free, a waiting lead."""
    try:
        push.offer_ended(offer)
    except Exception:
        log.exception("pushing the end of offer %s failed", offer.id)
    if offer.state != OfferState.EXPIRED:
        _unschedule_expiry(offer.id)
    route_soon(
        lead_id=offer.lead_id if offer.state != OfferState.ACCEPTED else None,
        agent_id=offer.agent_id if agent_free else None,
    )


def lead_assigned_by_hand(contact_id: int, owner_id: int) -> None:
    """A person assigned the contact: its waiting or offered leads are dealt
    with, and any pending offer for them is withdrawn. Commits."""
    withdrawn: list[int] = []
    for _attempt in range(MAX_ATTEMPTS):
        lead_ids = list(
            db.session.scalars(
                select(Lead.id).where(
                    Lead.contact_id == contact_id,
                    Lead.state.in_(("queued", "offered")),
                )
            )
        )
        if not lead_ids:
            db.session.rollback()
            break
        now = utcnow()
        pending = db.session.execute(
            select(Offer.id, Offer.lead_id).where(
                Offer.lead_id.in_(lead_ids), Offer.state == OfferState.PENDING
            )
        ).all()
        freed: list[int] = []
        for offer_id, lead_id in pending:
            # Offer before lead, the order accept and expiry lock them in.
            if db.session.execute(
                update(Offer)
                .where(Offer.id == offer_id, Offer.state == OfferState.PENDING)
                .values(state=OfferState.CANCELLED, decided_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount:
                withdrawn.append(offer_id)
                freed.append(lead_id)
        # An "offered" lead is taken only when this transaction withdrew its
        # offer: one a routing offered meanwhile keeps a pending offer, and
        # the next pass withdraws it (rather than leave it pending on a lead
        # already assigned, where an accept would take the contact).
        db.session.execute(
            update(Lead)
            .where(
                Lead.id.in_(lead_ids),
                or_(
                    Lead.state == "queued",
                    and_(Lead.state == "offered", Lead.id.in_(freed or [-1])),
                ),
            )
            .values(state="assigned", accepted_by_id=owner_id, accepted_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    for offer_id in withdrawn:
        offer = push.ended_of(offer_id)
        try:
            push.offer_ended(offer)
        except Exception:
            log.exception("pushing the withdrawal of offer %s failed", offer_id)
        _unschedule_expiry(offer_id)
        route_soon(agent_id=offer.agent_id)


# --------------------------------------------------------------- presence


def agent_state(user: User) -> AgentState:
    state = db.session.get(AgentState, user.id)
    if state is None:
        state = AgentState(user_id=user.id, account_id=user.account_id)
        db.session.add(state)
        try:
            db.session.flush()
        except IntegrityError:
            # Created meanwhile by the user's other tab.
            db.session.rollback()
            state = db.session.get(AgentState, user.id)
    return state


def _despite_redis(step: Callable, *args, **kwargs) -> None:
    """Run a step that follows a commit; a Redis outage is logged, not
    raised: what was committed stands."""
    try:
        step(*args, **kwargs)
    except RedisError:
        log.warning("%s after a commit failed: Redis unreachable", step.__name__)


def set_available(user: User, available: bool, automatic: bool = False) -> AgentState:
    """The agent's "available" switch. On: waiting leads come to them. Off:
    their pending offer passes to the next agent. Commits."""
    state = agent_state(user)
    changed = state.available != available
    state.available = available
    if changed:
        state.available_changed_at = utcnow()
    db.session.commit()
    # The switch is saved. What follows tells the tabs and routers, through
    # Redis; with Redis down it must not turn the saved switch into an
    # error, nor stop the next step. The tabs get the switch again when
    # their socket reconnects, and the sweep routes what a wake-up missed.
    if changed:
        roster_changed()
        _despite_redis(push.presence, user.id, automatic=automatic)
    if available:
        _despite_redis(route_soon, agent_id=user.id)
    elif not automatic:
        _despite_redis(cancel_pending, user.id)
    return state


def is_online(user: User) -> bool:
    """Switched on with a live socket. False while Redis, which knows the
    sockets, cannot be asked: no offer reaches the agent then anyway."""
    state = db.session.get(AgentState, user.id)
    if not (state and state.available):
        return False
    try:
        return presence.is_live(user.account_id, user.id)
    except RedisError:
        log.warning("presence of user %s unknown: Redis unreachable", user.id)
        return False


def take_offline(user: User) -> None:
    """Suspension or deletion: offline at once, pending offer passed on."""
    state = db.session.get(AgentState, user.id)
    if state is not None and state.available:
        state.available = False
        state.available_changed_at = utcnow()
        db.session.commit()
        roster_changed()
    presence.drop(user.account_id, user.id)
    cancel_pending(user.id)
    from portal.realtime.hub import publish_close

    publish_close(user.id)


def pending_offer(user_id: int) -> Offer | None:
    return db.session.scalar(
        select(Offer).where(
            Offer.agent_id == user_id, Offer.state == OfferState.PENDING
        )
    )


# ------------------------------------------------------------------ sweep


def expire_overdue(now: datetime | None = None, limit: int = 200) -> int:
    """Expire every pending offer past its deadline; returns how many."""
    now = now or utcnow()
    overdue = list(
        db.session.scalars(
            select(Offer.id)
            .where(Offer.state == OfferState.PENDING, Offer.expires_at <= now)
            .order_by(Offer.expires_at)
            .limit(limit)
        )
    )
    db.session.rollback()
    return sum(1 for offer_id in overdue if expire_offer(offer_id, now))


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
        select(
            Lead.id,
            Lead.round,
            Lead.exhausted_at,
            Lead.department_id,
            # Whether its reasons are on record, not the reasons: a long
            # queue's reasons (a list per lead of every agent) cost more to
            # decode on every pass than the rest of the pass.
            Lead.routing.is_not(None).label("routed"),
            Lead.source,
            Lead.message,
            Contact.owner_id,
            Contact.name,
        )
        .join(Contact, Contact.id == Lead.contact_id)
        .where(Lead.account_id == account.id, Lead.state == "queued")
        .order_by(Lead.id)
        .limit(limit)
    ).all()
    if not waiting:
        db.session.rollback()
        if rosters is not None:
            rosters.free_after.pop(account_id, None)
        return 0
    roster = rosters.roster(account) if rosters is not None else None
    pool = read_pool(account, now, whole=True, roster=roster)
    declined_rows: dict[int, list[tuple[int, int]]] = {}
    for row in db.session.execute(_declined_query([lead.id for lead in waiting])):
        declined_rows.setdefault(row.lead_id, []).append((row.agent_id, row.round))
    db.session.rollback()  # end the read snapshot before placing
    free = {agent_id for agent_id in pool.agents if pool.is_free(agent_id)}
    placed = 0
    reasons: dict[int, list] = {}
    for lead in waiting:
        if tick is not None:
            tick()  # the router renews its lease through long passes
        candidates = pool.candidates(lead.department_id, lead.owner_id)
        if not (candidates & free) and lead.routed:
            continue  # nobody could take it now; its reasons are on record
        declined = _declined_by(
            declined_rows.get(lead.id, ()), lead.round, lead.exhausted_at is not None
        )
        lead_plan = evaluate(pool, lead.department_id, lead.owner_id, declined)
        if lead_plan.chosen is None:
            if _may_start_next_round(lead, lead_plan):
                # Rare: the single-lead path starts the round and routes.
                offer = route_lead(lead.id)
                if offer is not None:
                    pool.take(offer.agent_id, utcnow())
                    free.discard(offer.agent_id)
                    placed += 1
            else:
                reasons[lead.id] = lead_plan.candidates
            continue
        while lead_plan.chosen is not None:
            agent_id = lead_plan.chosen.id
            outcome = _place(lead, lead_plan, account_id=account_id, timeout=timeout)
            if isinstance(outcome, Placed):
                after_offer(outcome, _card(pool, lead, agent_id))
                pool.take(agent_id, outcome.offered_at)
                free.discard(agent_id)
                placed += 1
                break
            if outcome == LEAD_MOVED:
                break
            # Another routing (a request routing by itself) took the agent.
            pool.busy.add(agent_id)
            free.discard(agent_id)
            lead_plan.next_choice()
    _record_reasons(_changed_reasons(reasons))
    if rosters is not None:
        rosters.free_after[account_id] = len(free)
    return placed


def _card(pool: Pool, lead, agent_id: int):
    """The pop-up's facts, from what the dispatch read already."""
    return OfferCard(
        lead_id=lead.id,
        contact_name=lead.name,
        source=lead.source,
        message=lead.message,
        department_name=pool.roster.department_names.get(lead.department_id),
        language=pool.agents[agent_id].language,
    )


def _may_start_next_round(lead, lead_plan: Plan) -> bool:
    """Whether `_next_round` would act: every free candidate declined."""
    return (
        lead.exhausted_at is None
        and lead_plan.any(Skip.DECLINED)
        and not lead_plan.any(Skip.BUSY)
    )


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
        .where(table.c.id == bindparam("lead_id"), table.c.state == "queued")
        .values(routing=bindparam("routing")),
        reasons,
    )
    db.session.commit()


def alert_long_waits(account: Account, now: datetime | None = None) -> int:
    """Tell the department's managers about leads waiting too long.

    Only the time a department is open counts: a lead that came in at night
    alerts nobody at night, nor the moment the department opens (when its
    agents are switching on), but once the department has been open for the
    whole threshold and the lead still waits.
    """
    now = now or utcnow()
    minutes = account.roulette_queue_alert_minutes
    threshold = now - timedelta(minutes=minutes)
    quiet = _not_open_throughout(account.id, now, minutes)
    waiting = list(
        db.session.scalars(
            select(Lead)
            .where(
                Lead.account_id == account.id,
                Lead.state == "queued",
                Lead.alerted_at.is_(None),
                Lead.created_at <= threshold,
                or_(Lead.department_id.is_(None), Lead.department_id.not_in(quiet)),
            )
            .order_by(Lead.id)
            .limit(100)
        )
    )
    sent = 0
    for lead in waiting:
        claimed = db.session.execute(
            update(Lead)
            .where(Lead.id == lead.id, Lead.alerted_at.is_(None))
            .values(alerted_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            db.session.rollback()
            continue
        notifications = _notify_managers(account, lead, now)
        db.session.commit()
        for notification_id, user_id in notifications:
            push.notification(notification_id, user_id)
        sent += 1
    return sent


def _not_open_throughout(account_id: int, now: datetime, minutes: int) -> list[int]:
    """Departments closed at some moment of the last `minutes`."""
    return [
        dept
        for dept, working_hours, timezone in _department_hours(account_id)
        if not hours.open_throughout(working_hours, timezone, now, minutes)
    ]


def _managers_of(account: Account, lead: Lead) -> list[int]:
    def holders(permission: str):
        return (
            select(User.id)
            .join(RolePermission, RolePermission.role_id == User.role_id)
            .where(
                User.account_id == account.id,
                User.status == UserStatus.ACTIVE,
                RolePermission.permission == permission,
            )
        )

    if lead.department_id is not None:
        in_department = list(
            db.session.scalars(
                holders("contacts.assign").where(
                    User.id.in_(
                        select(department_member.c.user_id).where(
                            department_member.c.department_id == lead.department_id
                        )
                    )
                )
            )
        )
        if in_department:
            return in_department
    return list(db.session.scalars(holders("users.manage")))


def _notify_managers(
    account: Account, lead: Lead, now: datetime
) -> list[tuple[int, int]]:
    from portal.models import Notification

    contact = db.session.get(Contact, lead.contact_id)
    made = []
    for user_id in _managers_of(account, lead):
        notification = Notification(
            account_id=account.id,
            user_id=user_id,
            kind="lead_waiting",
            data={
                "lead_id": lead.id,
                "contact_id": lead.contact_id,
                "contact_name": contact.name if contact else None,
                "minutes": account.roulette_queue_alert_minutes,
            },
            url=f"/contacts/{lead.contact_id}",
            dedupe_key=f"lead-waiting:{lead.id}:{user_id}",
            created_at=now,
        )
        db.session.add(notification)
        db.session.flush()
        made.append((notification.id, user_id))
    return made


def sweep_queue() -> dict[str, int]:
    """The slower half of the safety net: offer waiting leads, alert managers
    about long waits, forget stale presence marks."""
    figures = {"dispatched": 0, "alerted": 0}
    from portal.roulette import router

    # The router routes the queue on its own; without it, the sweep does.
    routed = router.running()
    for account in db.session.scalars(
        select(Account).where(Account.roulette_enabled.is_(True))
    ).all():
        if not routed:
            figures["dispatched"] += dispatch(account)
        figures["alerted"] += alert_long_waits(account)
        presence.prune(account.id)
    db.session.rollback()
    return figures


def sweep(full: bool = True) -> dict[str, int]:
    """The safety net (the worker runs the expiry every half second and the
    rest every five): expire overdue offers; with `full`, also `sweep_queue`."""
    figures = {"expired": expire_overdue()}
    if full:
        figures.update(sweep_queue())
    return figures
