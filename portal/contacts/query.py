"""The contact list's WHERE clauses: search, each filter, the queue, and
the owner branches a page is the union of.

Callers AND them with `scope.visible_clause(user)`, so a filter can only
narrow what the viewer may see, never widen it. Every search is a prefix
range on an indexed column (name_search, phone_national, phone_e164,
email_normalized), never `LIKE '%...%'`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from portal.contacts import normalize
from portal.contacts.list_filters import OPEN, QUEUE_PERMISSION, ContactFilters
from portal.contacts.scope import sees_everything
from portal.contacts.service import OPEN_STATUSES
from portal.extensions import db
from portal.models import Contact, Lead, Offer, TeamMember, UnitMember, User

MIN_PHONE_DIGITS = 3


class unindexed(ColumnElement):
    """A column the planner must not use an index for (SQLite's `+column`).

    A prefix or date range would otherwise tempt SQLite, which keeps no
    statistics by default, into reading every match of a broad range and
    sorting it, when walking the page order and filtering is far cheaper.
    Other databases get the plain column: their planners have statistics.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(unindexed)
def _compile_unindexed(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _compile_unindexed_sqlite(
    element: unindexed, compiler: SQLCompiler, **kw: Any
) -> str:
    return "+" + compiler.process(element.column, **kw)


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`
    (None when there is none), so a prefix match is an index range."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            return "".join(chars) + chr(last + 1)
    return None


def prefix_clause(column: ColumnElement, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range the column's index serves.

    PostgreSQL compares with the byte-wise pattern operators, which the
    varchar_pattern_ops indexes of migration 0003 serve whatever the
    database's collation; SQLite's default BINARY collation already is
    byte-wise.
    """
    upper = _successor(prefix)
    if db.engine.dialect.name == "postgresql":
        lower_clause = column.op("~>=~", is_comparison=True)(prefix)
        if upper is None:
            return lower_clause
        return and_(lower_clause, column.op("~<~", is_comparison=True)(upper))
    if upper is None:
        return column >= prefix
    return and_(column >= prefix, column < upper)


def search_terms(query: str) -> list[tuple[str, str]]:
    """What `q` means, as (column name, prefix) alternatives: an email prefix
    when it has "@", a phone prefix when it is digits (any punctuation, at
    least three), else a prefix of the accent-folded name."""
    text = query.strip()
    if not text:
        return []
    if "@" in text:
        return [("email_normalized", text.lower())]
    digits = normalize.phone_digits(text)
    if len(digits) >= MIN_PHONE_DIGITS and not any(ch.isalpha() for ch in text):
        # "(11) 91234" is a national number, "+55 11 9123" an international
        # one; either may be typed without punctuation, so try both.
        return [
            ("phone_national", digits.lstrip("0") or digits),
            ("phone_e164", "+" + digits),
        ]
    folded = normalize.fold(text)
    return [("name_search", folded)] if folded else []


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_after(day: date) -> datetime | None:
    try:
        return _day_start(day) + timedelta(days=1)
    except OverflowError:
        return None


def date_range(
    column: ColumnElement, start: date | None, end: date | None
) -> list[ColumnElement[bool]]:
    clauses = []
    if start:
        clauses.append(column >= _day_start(start))
    if end:
        after = _day_after(end)
        if after is not None:
            clauses.append(column < after)
    return clauses


def owner_clauses(user: User, owner: str, owner_id: int | None = None) -> list:
    if owner == "me":
        return [Contact.owner_id == user.id]
    if owner == "unassigned":
        return [Contact.owner_id.is_(None)]
    if owner_id is not None:
        return [Contact.owner_id == owner_id]
    return []


def open_too_long_clause(
    hours: int,
    now: datetime | None = None,
    *,
    status: ColumnElement | None = None,
    activity: ColumnElement | None = None,
) -> ColumnElement[bool]:
    """Open statuses with no activity for `hours` hours."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=hours)
    status = Contact.status if status is None else status
    activity = Contact.last_activity_at if activity is None else activity
    return and_(
        status.in_([str(s) for s in OPEN_STATUSES]),
        activity < cutoff,
    )


def offered(filters: ContactFilters) -> bool:
    return bool(
        filters.offer
        or filters.offer_agent_id
        or filters.offer_from
        or filters.offer_to
    )


def offer_clause(filters: ContactFilters) -> ColumnElement[bool]:
    """Contacts with a lead offered as the `offer*` filters say (to whom,
    when, how it ended)."""
    where = [Lead.contact_id == Contact.id]
    if filters.offer:
        where.append(Offer.state == filters.offer)
    if filters.offer_agent_id:
        where.append(Offer.agent_id == filters.offer_agent_id)
    where += date_range(Offer.offered_at, filters.offer_from, filters.offer_to)
    return select(Offer.id).join(Lead, Lead.id == Offer.lead_id).where(*where).exists()


def queue_waiting(user: User) -> bool:
    """Whether `user` may list the contacts waiting in the roulette's queue."""
    return user.can(QUEUE_PERMISSION)


def waiting_clause(account_id: int) -> ColumnElement[bool]:
    """Contacts with a lead waiting in the roulette's queue.

    The queued leads come from ix_lead_state (account, state, id), a short
    range however many leads the account has ever had; the database then
    joins them to contacts by primary key.
    """
    queued = select(Lead.contact_id).where(
        Lead.account_id == account_id, Lead.state == "queued"
    )
    return Contact.id.in_(queued)


def waiting_since(account_id: int, contact_ids: list[int]) -> dict[int, datetime]:
    """When the oldest queued lead of each contact arrived (contacts without
    one are left out); one query on the lead's contact_id index."""
    if not contact_ids:
        return {}
    rows = db.session.execute(
        select(Lead.contact_id, func.min(Lead.created_at))
        .where(
            Lead.account_id == account_id,
            Lead.contact_id.in_(contact_ids),
            Lead.state == "queued",
        )
        .group_by(Lead.contact_id)
    )
    return {contact_id: since for contact_id, since in rows}


def narrowing_clauses(
    user: User,
    filters: ContactFilters,
    now: datetime | None = None,
    *,
    walk_sort_order: bool = False,
) -> list:
    """The filters' WHERE clauses (without visibility: callers add it).

    With `walk_sort_order`, range filters are marked unindexed (except on
    the sort column), so the database walks the page order and filters.
    """
    now = now or datetime.now(UTC)

    def column(attribute: ColumnElement) -> ColumnElement:
        keep = not walk_sort_order or (
            filters.sort == "last_activity" and attribute is Contact.last_activity_at
        )
        return attribute if keep else unindexed(attribute)

    clauses: list = owner_clauses(user, filters.owner, filters.owner_id)
    terms = search_terms(filters.q)
    if terms:
        clauses.append(
            or_(
                *(prefix_clause(column(getattr(Contact, name)), p) for name, p in terms)
            )
        )
    if filters.status == OPEN:
        clauses.append(Contact.status.in_([str(s) for s in OPEN_STATUSES]))
    elif filters.status:
        clauses.append(Contact.status == filters.status)
    if filters.origin:
        clauses.append(Contact.origin == filters.origin)
    if filters.department_id:
        clauses.append(Contact.department_id == filters.department_id)
    if filters.campaign_id:
        clauses.append(Contact.campaign_id == filters.campaign_id)
    if filters.lead == "waiting" and queue_waiting(user):
        clauses.append(waiting_clause(user.account_id))
    if filters.team_id:
        members = select(TeamMember.user_id).where(
            TeamMember.team_id == filters.team_id
        )
        clauses.append(Contact.owner_id.in_(members))
    if filters.unit_id:
        members = select(UnitMember.user_id).where(
            UnitMember.unit_id == filters.unit_id
        )
        clauses.append(Contact.owner_id.in_(members))
    clauses += date_range(
        column(Contact.created_at), filters.created_from, filters.created_to
    )
    clauses += date_range(
        column(Contact.last_activity_at), filters.active_from, filters.active_to
    )
    if offered(filters):
        clauses.append(offer_clause(filters))
    clauses += date_range(
        column(Contact.attended_at), filters.attended_from, filters.attended_to
    )
    if filters.response_from is not None:
        clauses.append(Contact.first_response_seconds >= filters.response_from)
    if filters.response_under is not None:
        clauses.append(Contact.first_response_seconds < filters.response_under)
    if filters.open_too_long:
        clauses.append(
            open_too_long_clause(
                filters.open_too_long_hours,
                now,
                status=column(Contact.status),
                activity=column(Contact.last_activity_at),
            )
        )
    return clauses


def owner_branches(user: User, filters: ContactFilters) -> list[list]:
    """The list as a union of narrow index walks, one per owner branch.

    A user who leads nobody (no team or unit view, not everything) sees
    owned contacts only when they are their own (scope.visible_clause), so
    their "all" list is their own plus the unassigned ones: two walks of the
    (account, owner, id) index merged here, instead of one walk over
    everybody's contacts filtered down to a sliver. Each branch still has
    the visibility clause; tests check the union equals it for every role.
    """
    if filters.owner or filters.owner_id is not None:
        return [[]]
    if (
        sees_everything(user)
        or user.can("contacts.view_teams")
        or user.can("contacts.view_units")
    ):
        return [[]]
    return [[Contact.owner_id == user.id], [Contact.owner_id.is_(None)]]
