"""The reads that feed the choice: receivers, roster, pool, waiting leads.

The promise: reads only, never locked and never written (apart from the
roster's version counter in Redis). Every routing decision is made on what
these return, and the writes above (`portal.roulette.placement`) re-check
in their WHERE clauses whatever may have changed since: two leads may both
pick the same free agent here, and the unique index lets one have her.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache

from redis import RedisError
from sqlalchemy import Integer, Row, and_, bindparam, exists, func, or_, select
from sqlalchemy.sql.selectable import Select

from portal.extensions import db
from portal.models import (
    ENDED_WITHOUT_OWNER,
    Account,
    AgentState,
    Contact,
    Department,
    Lead,
    LeadState,
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
from portal.org import hours
from portal.realtime import presence
from portal.redis_conn import get_redis
from portal.roulette.choice import (
    Agent,
    Plan,
    Pool,
    Roster,
    declined_by,
    evaluate,
)

log = logging.getLogger(__name__)

RECEIVE = "leads.receive"
# How many waiting leads one free agent looks through at a time.
SCAN_LIMIT = 20

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# The reads below run for every lead and every pass: each statement is
# built once, its values passed as parameters, since building and cache-
# keying a statement per call cost more than running it.
_ACCOUNT = bindparam("account_id", type_=Integer)


@cache
def receivers(
    hybrid: bool, *, in_department: bool = False, or_owner: bool = False
) -> Select:
    """Active users of the account (parameter `account_id`) whose role may
    receive leads; `hybrid` (the account's process mode): flagged ones only.
    `in_department`: only members of `department_id`, and `or_owner` the
    contact's owner (`owner_id`) wherever they sit."""
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
        .where(User.account_id == _ACCOUNT, User.status == UserStatus.ACTIVE)
    )
    if hybrid:
        query = query.where(User.receives_web_leads.is_(True))
    if in_department:
        members = select(department_member.c.user_id).where(
            department_member.c.department_id
            == bindparam("department_id", type_=Integer)
        )
        if or_owner:
            query = query.where(
                or_(
                    User.id.in_(members),
                    User.id == bindparam("owner_id", type_=Integer),
                )
            )
        else:
            query = query.where(User.id.in_(members))
    return query


def _hybrid(account: Account) -> bool:
    return account.process_mode == ProcessMode.HYBRID


def _agent(row: Row) -> Agent:
    since = max(row.last_offer_at or _EPOCH, row.available_changed_at or _EPOCH)
    return Agent(
        id=row.id,
        name=row.name,
        available=bool(row.available),
        waiting_since=since,
        language=row.language,
    )


def open_leads(account: Account, agent_ids: list[int]) -> dict[int, int]:
    """How many accepted, unattended leads each agent holds (the cap's count)."""
    rows = db.session.execute(
        _OPEN_LEADS, {"account_id": account.id, "agent_ids": agent_ids}
    )
    return {agent_id: count for agent_id, count in rows}


_OPEN_LEADS = (
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
        Lead.account_id == _ACCOUNT,
        Lead.accepted_by_id.in_(bindparam("agent_ids", expanding=True)),
        Lead.state == LeadState.ASSIGNED,
        Lead.attended_at.is_(None),
    )
    .group_by(Lead.accepted_by_id)
)


def department_hours(account_id: int) -> list[tuple[int, dict, str]]:
    """(id, working hours, time zone) of the departments that have hours."""
    rows = db.session.execute(_DEPARTMENT_HOURS, {"account_id": account_id})
    return [tuple(row) for row in rows]


_DEPARTMENT_HOURS = select(
    Department.id, Department.working_hours, Department.timezone
).where(Department.account_id == _ACCOUNT, Department.working_hours.is_not(None))


def closed_of(with_hours: Iterable[tuple[int, dict, str]], now: datetime) -> set[int]:
    """The departments of `with_hours` outside their working hours at `now`."""
    return {
        dept
        for dept, working_hours, timezone in with_hours
        if not hours.is_open(working_hours, timezone, now)
    }


def read_roster(
    account: Account,
    department_id: int | None = None,
    owner_id: int | None = None,
    *,
    whole: bool = False,
) -> Roster:
    """The receivers for a lead of `department_id` (and its contact's owner),
    or with `whole` those of every department at once (the router's)."""
    in_department = not whole and department_id is not None
    query = receivers(
        _hybrid(account),
        in_department=in_department,
        or_owner=in_department and owner_id is not None,
    )
    params = {
        "account_id": account.id,
        "department_id": department_id,
        "owner_id": owner_id,
    }
    agents = {row.id: _agent(row) for row in db.session.execute(query, params)}
    membership: dict[int, set[int]] | None = None
    names: dict[int, str] = {}
    if whole:
        membership = {}
        if agents:
            rows = db.session.execute(_MEMBERSHIP, {"user_ids": list(agents)})
            for dept, user_id in rows:
                membership.setdefault(dept, set()).add(user_id)
        names = dict(
            db.session.execute(_DEPARTMENT_NAMES, {"account_id": account.id}).all()
        )
    return Roster(
        agents=agents,
        members=membership,
        department_names=names,
        hours=department_hours(account.id),
    )


_MEMBERSHIP = select(
    department_member.c.department_id, department_member.c.user_id
).where(department_member.c.user_id.in_(bindparam("user_ids", expanding=True)))
_DEPARTMENT_NAMES = select(Department.id, Department.name).where(
    Department.account_id == _ACCOUNT
)


def read_pool(
    account: Account,
    now: datetime,
    department_id: int | None = None,
    owner_id: int | None = None,
    *,
    whole: bool = False,
    roster: Roster | None = None,
    live: set[int] | None = None,
    busy: set[int] | None = None,
) -> Pool:
    """The pool for a lead of `department_id` (or, `whole`, for any lead):
    the roster (given, or read now) and who is live, busy and loaded now
    (`live` and `busy` given: read just before, by `live_and_busy`)."""
    if roster is None:
        roster = read_roster(account, department_id, owner_id, whole=whole)
    ids = list(roster.agents)
    if not ids:
        live, busy = set(), set()
    elif live is None or busy is None:
        live, busy = live_and_busy(account.id)
    loads = open_leads(account, ids) if ids and account.roulette_capacity else {}
    return Pool(
        capacity=account.roulette_capacity,
        roster=roster,
        live=live,
        busy=busy,
        loads=loads,
        closed=closed_of(roster.hours, now),
    )


def live_and_busy(account_id: int) -> tuple[set[int], set[int]]:
    """Who of the account is live now, and who holds a pending offer. An
    agent in the first and not the second may be free; nobody such, and no
    lead can be offered now, whatever the roster says."""
    live = presence.live_user_ids(account_id)
    busy = set(db.session.scalars(_BUSY, {"account_id": account_id}))
    return live, busy


_BUSY = select(Offer.agent_id).where(
    Offer.account_id == _ACCOUNT, Offer.state == OfferState.PENDING
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
    place, as the placement writes it to the database.
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


def declined_of(lead_ids: list[int]) -> list[Row]:
    """(lead id, agent id, round) of the leads' offers ended without owner."""
    return db.session.execute(_DECLINED, {"lead_ids": lead_ids}).all()


_DECLINED = select(Offer.lead_id, Offer.agent_id, Offer.round).where(
    Offer.lead_id.in_(bindparam("lead_ids", expanding=True)),
    Offer.state.in_(ENDED_WITHOUT_OWNER),
)


def plan(account: Account, lead: Lead, now: datetime | None = None) -> Plan:
    """Evaluate every candidate for the lead's current round; pick one."""
    now = now or utcnow()
    owner_id = db.session.scalar(
        select(Contact.owner_id).where(Contact.id == lead.contact_id)
    )
    pool = read_pool(account, now, lead.department_id, owner_id)
    if not pool.agents:
        return Plan(agents=[], chosen=None)
    rows = declined_of([lead.id])
    declined = declined_by(
        [(r.agent_id, r.round) for r in rows], lead.round, lead.exhausted_at is not None
    )
    return evaluate(pool, lead.department_id, owner_id, declined)


def pending_offer(user_id: int) -> Offer | None:
    """The agent's pending offer, if any (at most one: a unique index)."""
    return db.session.scalar(
        select(Offer).where(
            Offer.agent_id == user_id, Offer.state == OfferState.PENDING
        )
    )


def has_pending(agent_id: int) -> bool:
    return (
        db.session.scalar(
            select(Offer.id).where(
                Offer.agent_id == agent_id, Offer.state == OfferState.PENDING
            )
        )
        is not None
    )


def may_take_a_lead(account: Account, agent_id: int) -> bool:
    """Whether any routing could choose the agent now (a receiver, below
    the cap); if not, scanning the queue for them is wasted work."""
    query = receivers(_hybrid(account)).where(User.id == agent_id)
    if db.session.scalar(query, {"account_id": account.id}) is None:
        return False
    if account.roulette_capacity:
        held = open_leads(account, [agent_id]).get(agent_id, 0)
        return held < account.roulette_capacity
    return True


def waiting_leads_for(agent: User, after: int = 0) -> list[int]:
    """The oldest waiting leads (ids above `after`) that routing could give
    this agent: in their departments, without one, or of their contacts.

    Departments outside their working hours are left out: their leads wait
    for everyone, and a night's pile of them would otherwise fill every
    batch and hide the open departments' leads."""
    departments = select(department_member.c.department_id).where(
        department_member.c.user_id == agent.id
    )
    closed = list(closed_of(department_hours(agent.account_id), utcnow()))
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
                Lead.state == LeadState.QUEUED,
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
