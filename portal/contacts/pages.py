"""Pages of the contact list: keyset pages, chosen by probing the
selective filters, and the chunked walk exports use.

Pages are keyset pages (`WHERE (sort value, id) < cursor`), never OFFSET,
so the millionth contact costs what the first does; every SELECT carries
`scope.visible_clause(user)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Row, Select, and_, func, or_, select, text
from sqlalchemy.orm import joinedload

from portal.contacts.cursor import Cursor, as_utc, encode_cursor
from portal.contacts.list_filters import ContactFilters
from portal.contacts.query import (
    date_range,
    narrowing_clauses,
    offer_clause,
    offered,
    open_too_long_clause,
    owner_branches,
    prefix_clause,
    queue_waiting,
    search_terms,
    waiting_clause,
)
from portal.contacts.scope import visible_clause
from portal.extensions import db
from portal.models import Contact, User

# A selective filter matching at most this many contacts is answered by
# looking its ids up (see page_plan).
PROBE_CAP = 5000


@dataclass
class ContactPage:
    contacts: list[Contact] = field(default_factory=list)
    next_cursor: str | None = None


def _selective_groups(user: User, filters: ContactFilters, now: datetime) -> list[list]:
    """The filters an index of their own can answer, each as OR-alternatives.

    Each is probed alone (see _narrowest); a narrow one turns the page into
    a lookup of at most PROBE_CAP ids.
    """
    groups: list[list] = []
    if filters.lead == "waiting" and queue_waiting(user):
        # A queue is short: usually the narrowest filter of all.
        groups.append(_LookUpGroup([waiting_clause(user.account_id)]))
    if offered(filters):
        # One agent's offers of a range: few contacts, looked up by id.
        groups.append(_LookUpGroup([offer_clause(filters)]))
    terms = search_terms(filters.q)
    if terms:
        groups.append([prefix_clause(getattr(Contact, name), p) for name, p in terms])
    if filters.open_too_long:
        groups.append([open_too_long_clause(filters.open_too_long_hours, now)])
    for column, start, end in (
        (Contact.created_at, filters.created_from, filters.created_to),
        (Contact.last_activity_at, filters.active_from, filters.active_to),
    ):
        bounds = date_range(column, start, end)
        if bounds:
            groups.append([and_(*bounds)])
    return groups


class _LookUpGroup(list):
    """A selective filter whose matches are looked up by id on every
    database. Under a scope's OR clause PostgreSQL underestimates the queue
    semi-join and walks the contact ids backwards through most of the table
    (86 ms on 300,000 contacts) instead of fetching the few queued ones
    (under 5 ms)."""


@dataclass(frozen=True)
class _Narrowest:
    """The narrowest selective filter: how many contacts it matches (at most
    PROBE_CAP), and their ids when they were asked for (else None)."""

    count: int
    ids: list[int] | None


def _narrowest(
    account_id: int, groups: list[list], fetch_ids: bool
) -> _Narrowest | None:
    """Probe each selective filter; None when every one is broad.

    A probe counts at most PROBE_CAP + 1 index entries inside the database
    (the ids travel only when few and wanted), so it costs the same on any
    table size.
    """
    best: _Narrowest | None = None
    for alternatives in groups:
        wanted = fetch_ids or isinstance(alternatives, _LookUpGroup)
        count, ids = 0, set()
        for clause in alternatives:
            matches = (
                select(Contact.id)
                .where(Contact.account_id == account_id, clause)
                .limit(PROBE_CAP + 1)
            )
            counted = db.session.scalar(
                select(func.count()).select_from(matches.subquery())
            )
            count += counted
            if count > PROBE_CAP:
                break
            if counted and wanted:
                ids.update(db.session.scalars(matches))
        if count <= PROBE_CAP and (best is None or count < best.count):
            best = _Narrowest(count=count, ids=sorted(ids) if wanted else None)
    return best


def _keyset(filters: ContactFilters, cursor: Cursor | None) -> tuple[list, list]:
    """(WHERE clauses after the cursor, ORDER BY) for the filters' sort.

    "newest"/"oldest" are creation order, which is id order: every list
    index ends in the id, so it serves any equality filter in page order.
    "last_activity" walks (last_activity_at, id) downwards.
    """
    if filters.sort == "oldest":
        after = [Contact.id > cursor.id] if cursor else []
        return after, [Contact.id.asc()]
    if filters.sort == "last_activity":
        after = []
        if cursor:
            moment = as_utc(datetime.fromisoformat(str(cursor.value)))
            after = [
                # The plain bound lets the index range start at the cursor;
                # the OR is the exact tie-break on id.
                Contact.last_activity_at <= moment,
                or_(
                    Contact.last_activity_at < moment,
                    and_(Contact.last_activity_at == moment, Contact.id < cursor.id),
                ),
            ]
        return after, [Contact.last_activity_at.desc(), Contact.id.desc()]
    after = [Contact.id < cursor.id] if cursor else []
    return after, [Contact.id.desc()]


def _cursor_for(sort: str, contact: Contact | Row) -> Cursor:
    if sort == "last_activity":
        value: int | str = contact.last_activity_at.isoformat()
    else:
        value = contact.id
    return Cursor(sort=sort, value=value, id=contact.id)


@dataclass
class PagePlan:
    """The SELECTs whose merge is one page, and how they find their rows."""

    selects: list[Select] = field(default_factory=list)
    # True: each SELECT walks an index in page order and stops after `limit`
    # matches. False: it looks up a short list of candidate ids and sorts.
    walks_page_order: bool = True


def page_plan(
    user: User, filters: ContactFilters, cursor: Cursor | None, limit: int
) -> PagePlan:
    """One page (`limit` rows from each SELECT, after `cursor`); no SELECTs
    when a probe already proved that nothing matches.

    Two plans, chosen by probing the selective filters (search, date ranges,
    open too long): when one matches few contacts, fetch those and sort
    them; otherwise walk the page order (an index ending in id) and filter,
    which finds a page quickly precisely because the matches are many.
    """
    now = datetime.now(UTC)
    after, order = _keyset(filters, cursor)
    groups = _selective_groups(user, filters, now)
    # SQLite looks the candidate ids up by rowid; PostgreSQL's planner finds
    # the same rows through the filter's own index once told not to walk,
    # and would check a long id list row by row.
    look_up_ids = db.engine.dialect.name != "postgresql"
    narrow = _narrowest(user.account_id, groups, look_up_ids) if groups else None
    if narrow is not None and narrow.count == 0:
        return PagePlan()
    common = [
        visible_clause(user),
        *narrowing_clauses(
            user, filters, now, walk_sort_order=narrow is None and bool(groups)
        ),
        *after,
    ]
    if narrow is not None and narrow.ids is not None:
        common.append(Contact.id.in_(narrow.ids))
    return PagePlan(
        selects=[
            select(Contact).where(*common, *branch).order_by(*order).limit(limit)
            for branch in owner_branches(user, filters)
        ],
        walks_page_order=narrow is None,
    )


def _run(plan: PagePlan, execute: Callable[[Select], list]) -> list:
    """Every SELECT of the plan through `execute`, results concatenated.

    PostgreSQL multiplies the selectivity of the visibility clause with the
    branch and filters that repeat parts of it, underestimates the matches
    tenfold, and then prefers reading all of them and sorting over walking
    the page order. For a walk, sorting is switched off (SET LOCAL, so only
    for these statements), and so is JIT, whose compile time dwarfs a page.
    """
    hint = plan.walks_page_order and db.engine.dialect.name == "postgresql"
    if hint:
        db.session.execute(text("SET LOCAL enable_sort = off"))
        db.session.execute(text("SET LOCAL jit = off"))
    found: list = []
    for query in plan.selects:
        found += execute(query)
    if hint:
        db.session.execute(text("SET LOCAL enable_sort TO DEFAULT"))
        db.session.execute(text("SET LOCAL jit TO DEFAULT"))
    return found


def with_related(query: Select) -> Select:
    """Load owner, department and campaign in the same query: outer joins
    on primary keys keep the contact walk as the plan's driving loop."""
    return query.options(
        joinedload(Contact.owner),
        joinedload(Contact.department),
        joinedload(Contact.campaign),
    )


def _sort_key(sort: str) -> Callable[[Contact | Row], tuple[datetime, int] | int]:
    if sort == "last_activity":
        return lambda c: (c.last_activity_at, c.id)
    return lambda c: c.id


def _fetch(
    user: User, filters: ContactFilters, cursor: Cursor | None, limit: int
) -> list[Contact]:
    """Up to `limit` contacts after `cursor`, in page order, related rows
    loaded."""
    contacts: list[Contact] = _run(
        page_plan(user, filters, cursor, limit),
        lambda query: list(db.session.scalars(with_related(query))),
    )
    contacts.sort(key=_sort_key(filters.sort), reverse=filters.sort != "oldest")
    return contacts[:limit]


def list_contacts(user: User, filters: ContactFilters) -> ContactPage:
    """One page of the contacts `user` may see, with owner, department and
    campaign loaded; `next_cursor` is None on the last page."""
    contacts = _fetch(user, filters, filters.cursor, filters.limit + 1)
    next_cursor = None
    if len(contacts) > filters.limit:
        contacts = contacts[: filters.limit]
        next_cursor = encode_cursor(_cursor_for(filters.sort, contacts[-1]))
    return ContactPage(contacts=contacts, next_cursor=next_cursor)


def iter_rows(
    user: User,
    filters: ContactFilters,
    shape: Callable[[Select], Select],
    chunk: int = 1000,
) -> Iterator[list[Row]]:
    """Every row of the filtered list, `chunk` at a time by keyset, for
    exports. `shape` turns each page SELECT into the columns wanted; it
    must keep `id` and `last_activity_at` (the cursor is made of them).
    Rows are plain tuples, so a long export holds no ORM objects."""
    cursor = filters.cursor
    while True:
        rows: list[Row] = _run(
            page_plan(user, filters, cursor, chunk),
            lambda query: db.session.execute(shape(query)).all(),
        )
        rows.sort(key=_sort_key(filters.sort), reverse=filters.sort != "oldest")
        rows = rows[:chunk]
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        cursor = _cursor_for(filters.sort, rows[-1])
