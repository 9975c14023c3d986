"""The supervision dashboard's figures, per agent of the viewer's scope.

Every figure counts contacts with the contact list's own clauses
(contacts.query.narrowing_clauses over ContactFilters, plus the viewer's
visibility), grouped by owner: the list opened from a figure, filtered to
that owner, applies the very same clauses, so it lists exactly the
contacts the figure counts. One grouped query per metric, whatever the
number of agents.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from flask_babel import lazy_gettext as _l
from sqlalchemy import distinct, func, select

from portal.contacts.list_filters import OPEN, ContactFilters
from portal.contacts.query import date_range, narrowing_clauses
from portal.contacts.scope import (
    led_member_ids,
    may_own,
    sees_everything,
    visible_clause,
)
from portal.extensions import db
from portal.models import (
    Account,
    Contact,
    ContactStatus,
    Lead,
    Offer,
    TeamMember,
    UnitMember,
    User,
)
from portal.models.user import UserStatus
from portal.reports.periods import Period


@dataclass(frozen=True)
class Metric:
    key: str
    label: object
    # How it is measured, in a line under it.
    measured: object
    in_period: bool  # whether the date range narrows it
    # The list's filter that narrows a figure to its row's agent.
    per_agent: str = "owner"


METRICS = (
    Metric(
        "open",
        _l("Open contacts"),
        _l("Now: contacts new, assigned or in progress."),
        False,
    ),
    Metric(
        "open_too_long",
        _l("Open too long"),
        _l("Now: open, with no activity for the account's open-too-long hours."),
        False,
    ),
    Metric(
        "received",
        _l("Received"),
        _l("Contacts created in the range that the agent owns now."),
        True,
    ),
    Metric(
        "won",
        _l("Won"),
        _l("Contacts won now whose last activity (the win, or later) is in the range."),
        True,
    ),
    Metric(
        "lost",
        _l("Lost"),
        _l("Contacts lost now whose last activity is in the range."),
        True,
    ),
    Metric(
        "accepted",
        _l("Offers accepted"),
        _l("Contacts with a lead offered to them in the range that they accepted."),
        True,
        "offer_agent",
    ),
    Metric(
        "declined",
        _l("Offers declined"),
        _l("Contacts with a lead offered to them in the range that they declined."),
        True,
        "offer_agent",
    ),
    Metric(
        "expired",
        _l("Offers run out"),
        _l("Contacts with a lead offered to them in the range whose time ran out."),
        True,
        "offer_agent",
    ),
)
OFFER_METRICS = {"accepted", "declined", "expired"}


def metric_filters(metric: str, account: Account, period: Period) -> ContactFilters:
    """The contact list's filters behind a metric (no owner: added per row)."""
    base = ContactFilters(open_too_long_hours=account.open_too_long_hours)
    if metric == "open":
        return replace(base, status=OPEN)
    if metric == "open_too_long":
        return replace(base, open_too_long=True)
    if metric == "received":
        return replace(base, created_from=period.first, created_to=period.last)
    if metric in OFFER_METRICS:
        return replace(
            base, offer=metric, offer_from=period.first, offer_to=period.last
        )
    if metric in ("won", "lost"):
        status = ContactStatus.WON if metric == "won" else ContactStatus.LOST
        return replace(
            base, status=str(status), active_from=period.first, active_to=period.last
        )
    raise ValueError(metric)


@dataclass(frozen=True)
class AgentRow:
    user_id: int
    name: str
    counts: dict[str, int]
    # Median seconds from a lead's arrival to this agent's accept, over the
    # leads they accepted in the range (None: none).
    speed_to_lead: int | None = None


def agents_in_scope(
    viewer: User, account: Account, team_id: int | None, unit_id: int | None
) -> list[User]:
    query = select(User).where(
        User.account_id == account.id, User.status == UserStatus.ACTIVE
    )
    if not sees_everything(viewer):
        query = query.where(User.id.in_(led_member_ids(viewer)))
    if team_id:
        query = query.where(
            User.id.in_(select(TeamMember.user_id).where(TeamMember.team_id == team_id))
        )
    if unit_id:
        query = query.where(
            User.id.in_(select(UnitMember.user_id).where(UnitMember.unit_id == unit_id))
        )
    return [u for u in db.session.scalars(query.order_by(User.name)) if may_own(u)]


def _grouped(viewer: User, filters: ContactFilters, agent_ids: list[int]) -> dict:
    rows = db.session.execute(
        select(Contact.owner_id, func.count())
        .where(
            visible_clause(viewer),
            *narrowing_clauses(viewer, filters),
            Contact.owner_id.in_(agent_ids),
        )
        .group_by(Contact.owner_id)
    )
    return dict(rows.all())


def _grouped_offers(
    viewer: User, filters: ContactFilters, agent_ids: list[int]
) -> dict:
    """Distinct visible contacts per agent offered a lead as `filters` say:
    what the list shows with offer_agent=<agent> added."""
    rows = db.session.execute(
        select(Offer.agent_id, func.count(distinct(Contact.id)))
        .select_from(Contact)
        .join(Lead, Lead.contact_id == Contact.id)
        .join(Offer, Offer.lead_id == Lead.id)
        .where(
            visible_clause(viewer),
            *narrowing_clauses(viewer, filters),
            Offer.agent_id.in_(agent_ids),
            Offer.state == filters.offer,
            *date_range(Offer.offered_at, filters.offer_from, filters.offer_to),
        )
        .group_by(Offer.agent_id)
    )
    return dict(rows.all())


def _speeds(account: Account, period: Period, agent_ids: list[int]) -> dict:
    """Median speed to lead per agent over the leads they accepted."""
    seconds: dict[int, list[int]] = {}
    for agent_id, value in db.session.execute(
        select(Lead.accepted_by_id, Lead.speed_to_lead_seconds).where(
            Lead.account_id == account.id,
            Lead.accepted_by_id.in_(agent_ids),
            Lead.speed_to_lead_seconds.is_not(None),
            *date_range(Lead.accepted_at, period.first, period.last),
        )
    ):
        seconds.setdefault(agent_id, []).append(value)
    return {agent: int(statistics.median(v)) for agent, v in seconds.items()}


def rows(
    viewer: User,
    account: Account,
    period: Period,
    team_id: int | None = None,
    unit_id: int | None = None,
) -> list[AgentRow]:
    agents = agents_in_scope(viewer, account, team_id, unit_id)
    ids = [a.id for a in agents]
    counts: dict[str, dict] = {}
    for m in METRICS:
        filters = metric_filters(m.key, account, period)
        grouped = _grouped_offers if m.key in OFFER_METRICS else _grouped
        counts[m.key] = grouped(viewer, filters, ids) if ids else {}
    speeds = _speeds(account, period, ids) if ids else {}
    return [
        AgentRow(
            a.id,
            a.name,
            {m.key: counts[m.key].get(a.id, 0) for m in METRICS},
            speeds.get(a.id),
        )
        for a in agents
    ]


# First response: from the contact's arrival with its owner to the owner's
# first history entry or edit (contacts.service.mark_attended measures it).
RESPONSE_BUCKETS = (
    (0, 30, _l("under 30 s")),
    (30, 120, _l("30 s to 2 min")),
    (120, 300, _l("2 to 5 min")),
    (300, 600, _l("5 to 10 min")),
    (600, 1800, _l("10 to 30 min")),
    (1800, 3600, _l("30 to 60 min")),
    (3600, None, _l("over 1 h")),
)


def response_filters(
    account: Account, period: Period, low: int | None = None, high: int | None = None
) -> ContactFilters:
    """Contacts first answered in the range, [low, high) seconds after
    arriving (no bounds: all of them)."""
    return ContactFilters(
        open_too_long_hours=account.open_too_long_hours,
        attended_from=period.first,
        attended_to=period.last,
        response_from=low,
        response_under=high,
    )


@dataclass(frozen=True)
class ResponseRow:
    user_id: int
    name: str
    median_seconds: int | None
    answered: int
    buckets: tuple[int, ...]


def first_responses(
    viewer: User,
    account: Account,
    period: Period,
    team_id: int | None = None,
    unit_id: int | None = None,
) -> list[ResponseRow]:
    agents = agents_in_scope(viewer, account, team_id, unit_id)
    ids = [a.id for a in agents]
    if not ids:
        return []
    buckets = [
        _grouped(viewer, response_filters(account, period, low, high), ids)
        for low, high, _label in RESPONSE_BUCKETS
    ]
    seconds: dict[int, list[int]] = {}
    for owner_id, value in db.session.execute(
        select(Contact.owner_id, Contact.first_response_seconds).where(
            visible_clause(viewer),
            *narrowing_clauses(viewer, response_filters(account, period)),
            Contact.owner_id.in_(ids),
            Contact.first_response_seconds.is_not(None),
        )
    ):
        seconds.setdefault(owner_id, []).append(value)
    return [
        ResponseRow(
            a.id,
            a.name,
            int(statistics.median(seconds[a.id])) if seconds.get(a.id) else None,
            len(seconds.get(a.id, ())),
            tuple(bucket.get(a.id, 0) for bucket in buckets),
        )
        for a in agents
    ]
