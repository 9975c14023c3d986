"""The contact list as queries: filters, search, sorts, keyset pages, counts.

Everything here is ANDed with `scope.visible_clause(user)`, so a filter can
only narrow what the viewer may see, never widen it.

Speed on a million contacts comes from three habits:
- pages are keyset pages (`WHERE (sort value, id) < cursor`), never OFFSET;
- every search is a prefix range on an indexed column (name_search,
  phone_national, phone_e164, email_normalized), never `LIKE '%...%'`;
- counts are capped (`count(*)` over at most COUNT_CAP + 1 ids), so "1000+"
  costs the same on ten thousand or ten million rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.visitors import InternalTraversal

from portal.contacts import normalize
from portal.contacts.scope import sees_everything, visible_clause
from portal.contacts.service import OPEN_STATUSES
from portal.errors import ServiceError, ValidationError
from portal.extensions import db
from portal.ids import parse_id
from portal.models import (
    Account,
    Campaign,
    Contact,
    ContactStatus,
    Department,
    Lead,
    Origin,
    Team,
    TeamMember,
    Unit,
    UnitMember,
    User,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY = 200
COUNT_CAP = 1000
# A selective filter matching at most this many contacts is answered by
# looking its ids up (see page_plan).
PROBE_CAP = 5000
MIN_PHONE_DIGITS = 3
SORTS = ("newest", "oldest", "last_activity")
# The query-string keys this list understands, in the order a canonical
# (bookmarkable, savable) query string lists them.
FILTER_KEYS = (
    "owner",
    "q",
    "status",
    "origin",
    "department",
    "campaign",
    "team",
    "unit",
    "created_from",
    "created_to",
    "active_from",
    "active_to",
    "open_too_long",
    "lead",
    "sort",
)
QUICK_VIEWS = ("all", "mine", "unassigned", "open_too_long")
# Quick views only for those who hand contacts out (contacts.assign).
ASSIGNER_QUICK_VIEWS = ("waiting",)
# `lead=` values: "waiting" = a lead of the contact waits in the roulette's
# queue (state "queued"). Honoured only for contacts.assign.
LEAD_FILTERS = ("waiting",)
QUEUE_PERMISSION = "contacts.assign"


class BadCursor(ServiceError):
    """The `cursor` is not one this list handed out (answers 400)."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the row with (value, id)."""

    sort: str
    value: int | str
    id: int


@dataclass(frozen=True)
class ContactFilters:
    """A parsed, validated list query. Ids are resolved within the account."""

    owner: str = ""  # "", "me", "unassigned" or a user id (as text)
    owner_id: int | None = None
    q: str = ""
    status: str = ""
    origin: str = ""
    department: str = ""  # a department key, as the URL carries it
    department_id: int | None = None
    campaign: str = ""  # a campaign key
    campaign_id: int | None = None
    team_id: int | None = None
    unit_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None
    active_from: date | None = None
    active_to: date | None = None
    open_too_long: bool = False
    open_too_long_hours: int = 48
    lead: str = ""  # "" or "waiting"
    sort: str = "newest"
    cursor: Cursor | None = None
    limit: int = DEFAULT_LIMIT

    def query_args(self) -> dict[str, str]:
        """The filters as query-string values, empty ones left out."""
        values = {
            "owner": self.owner,
            "q": self.q,
            "status": self.status,
            "origin": self.origin,
            "department": self.department,
            "campaign": self.campaign,
            "team": str(self.team_id) if self.team_id else "",
            "unit": str(self.unit_id) if self.unit_id else "",
            "created_from": _iso(self.created_from),
            "created_to": _iso(self.created_to),
            "active_from": _iso(self.active_from),
            "active_to": _iso(self.active_to),
            "open_too_long": "1" if self.open_too_long else "",
            "lead": self.lead,
            "sort": "" if self.sort == "newest" else self.sort,
        }
        return {key: values[key] for key in FILTER_KEYS if values[key]}

    def query_string(self) -> str:
        """Canonical query string of the filters (no cursor, no limit)."""
        return urlencode(self.query_args())


@dataclass
class ContactPage:
    contacts: list[Contact] = field(default_factory=list)
    next_cursor: str | None = None


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


# --- Parsing the query string -------------------------------------------------


def parse_filters(
    account: Account, args: Mapping[str, str], viewer: User | None = None
) -> ContactFilters:
    """Read and validate the list's query string.

    With a `viewer` who may not assign contacts, `lead` is ignored (the
    queue is a managers' view). Raises ValidationError naming each bad field
    (its message is shown next to that filter), then BadCursor for a cursor
    this list did not issue.
    """
    errors: dict[str, str] = {}
    pick = _("Pick from the list.")

    def text(name: str) -> str:
        return " ".join((args.get(name) or "").split())

    values: dict = {"open_too_long_hours": account.open_too_long_hours}

    owner = text("owner")
    if owner in ("", "me", "unassigned"):
        values["owner"] = owner
    elif parse_id(owner) and _user_in_account(account, int(owner)):
        values["owner"] = owner
        values["owner_id"] = int(owner)
    else:
        errors["owner"] = pick

    q = text("q")
    if len(q) > MAX_QUERY:
        errors["q"] = _("Use at most %(n)d characters.", n=MAX_QUERY)
    values["q"] = q

    status = text("status")
    if status and status not in {s.value for s in ContactStatus}:
        errors["status"] = pick
    values["status"] = status

    origin = text("origin")
    if origin and origin not in {o.value for o in Origin}:
        errors["origin"] = pick
    values["origin"] = origin

    for name, model in (("department", Department), ("campaign", Campaign)):
        key = text(name)
        values[name] = key
        if key:
            row_id = _id_by_key(account, model, key)
            if row_id is None:
                errors[name] = pick
            values[f"{name}_id"] = row_id

    for name, model in (("team", Team), ("unit", Unit)):
        raw = text(name)
        if raw:
            row_id = _id_in_account(account, model, raw)
            if row_id is None:
                errors[name] = pick
            values[f"{name}_id"] = row_id

    for first, last in (
        ("created_from", "created_to"),
        ("active_from", "active_to"),
    ):
        for name in (first, last):
            raw = text(name)
            if not raw:
                continue
            try:
                values[name] = date.fromisoformat(raw)
            except ValueError:
                errors[name] = _("Use a date like 2024-12-31.")
        if values.get(first) and values.get(last) and values[first] > values[last]:
            errors[last] = _("The end comes before the start.")

    flag = text("open_too_long")
    if flag not in ("", "0", "1", "on"):
        errors["open_too_long"] = pick
    values["open_too_long"] = flag in ("1", "on")

    if viewer is None or viewer.can(QUEUE_PERMISSION):
        lead = text("lead")
        if lead and lead not in LEAD_FILTERS:
            errors["lead"] = pick
        values["lead"] = lead

    sort = text("sort") or "newest"
    if sort not in SORTS:
        errors["sort"] = pick
    values["sort"] = sort

    limit = text("limit")
    if limit:
        # isdigit() alone passes "²", which int() refuses; and int() refuses
        # a number of thousands of digits, far past the cap anyway.
        if not (limit.isascii() and limit.isdigit()):
            errors["limit"] = _("Use a whole number.")
        else:
            digits = limit.lstrip("0") or "0"
            wanted = int(digits) if len(digits) <= len(str(MAX_LIMIT)) else MAX_LIMIT
            values["limit"] = min(max(wanted, 1), MAX_LIMIT)

    if errors:
        raise ValidationError(errors)
    filters = ContactFilters(**values)
    raw_cursor = (args.get("cursor") or "").strip()
    if raw_cursor:
        filters = replace(filters, cursor=decode_cursor(raw_cursor, sort))
    return filters


def _user_in_account(account: Account, user_id: int) -> bool:
    return (
        db.session.scalar(
            select(User.id).where(User.id == user_id, User.account_id == account.id)
        )
        is not None
    )


def _id_by_key(account: Account, model, key: str) -> int | None:
    return db.session.scalar(
        select(model.id).where(model.account_id == account.id, model.key == key)
    )


def _id_in_account(
    account: Account, model: type[Team] | type[Unit], raw: str
) -> int | None:
    if parse_id(raw) is None:
        return None
    return db.session.scalar(
        select(model.id).where(model.id == int(raw), model.account_id == account.id)
    )


# --- Cursors ------------------------------------------------------------------
#
# A cursor is urlsafe base64 of compact JSON [sort, value, id] followed by a
# short HMAC, so a hand-edited one is refused instead of silently paging from
# an arbitrary place. It never grants anything: every page is still scoped.


def _cursor_mac(payload: bytes) -> bytes:
    key = str(current_app.secret_key).encode()
    return hmac.new(key, b"contacts.cursor:" + payload, hashlib.sha256).digest()[:12]


def encode_cursor(cursor: Cursor) -> str:
    payload = json.dumps(
        [cursor.sort, cursor.value, cursor.id], separators=(",", ":")
    ).encode()
    token = base64.urlsafe_b64encode(payload + _cursor_mac(payload))
    return token.decode().rstrip("=")


def decode_cursor(token: str, sort: str) -> Cursor:
    """The cursor in `token`; raises BadCursor if it was altered, truncated or
    made for another sort."""
    invalid = BadCursor(
        _("This page link is not valid (it may have been altered). Start again.")
    )
    if len(token) > 200:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    payload, mac = raw[:-12], raw[-12:]
    if len(raw) <= 12 or not hmac.compare_digest(mac, _cursor_mac(payload)):
        raise invalid
    try:
        cursor_sort, value, row_id = json.loads(payload)
    except (ValueError, TypeError):
        raise invalid from None
    if cursor_sort != sort:
        raise BadCursor(_("This page link belongs to another sort order. Start again."))
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise invalid
    if sort == "last_activity":
        if not isinstance(value, str):
            raise invalid
        try:
            _as_utc(datetime.fromisoformat(value))
        except ValueError:
            raise invalid from None
    elif value != row_id:
        raise invalid
    return Cursor(sort=sort, value=value, id=row_id)


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- Building the query -------------------------------------------------------


class unindexed(ColumnElement):
    """A column the planner must not use an index for (SQLite's `+column`).

    A prefix or date range would otherwise tempt SQLite, which keeps no
    statistics by default, into reading every match of a broad range and
    sorting it, when walking the page order and filtering is far cheaper.
    Other databases get the plain column: their planners have statistics.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column) -> None:
        self.column = column
        self.type = column.type


@compiles(unindexed)
def _compile_unindexed(element: unindexed, compiler, **kw) -> str:
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _compile_unindexed_sqlite(element: unindexed, compiler, **kw) -> str:
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


def prefix_clause(column, prefix: str) -> ColumnElement[bool]:
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


def _date_range(column, start: date | None, end: date | None) -> list:
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
    hours: int, now: datetime | None = None, *, status=None, activity=None
) -> ColumnElement[bool]:
    """Open statuses with no activity for `hours` hours."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=hours)
    status = Contact.status if status is None else status
    activity = Contact.last_activity_at if activity is None else activity
    return and_(
        status.in_([str(s) for s in OPEN_STATUSES]),
        activity < cutoff,
    )


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
    return {contact_id: _as_utc(since) for contact_id, since in rows}


def _selective_groups(user: User, filters: ContactFilters, now: datetime) -> list[list]:
    """The filters an index of their own can answer, each as OR-alternatives.

    Each is probed alone (see _narrowest); a narrow one turns the page into
    a lookup of at most PROBE_CAP ids.
    """
    groups: list[list] = []
    if filters.lead == "waiting" and queue_waiting(user):
        # A queue is short: usually the narrowest filter of all.
        groups.append(_LookUpGroup([waiting_clause(user.account_id)]))
    terms = search_terms(filters.q)
    if terms:
        groups.append([prefix_clause(getattr(Contact, name), p) for name, p in terms])
    if filters.open_too_long:
        groups.append([open_too_long_clause(filters.open_too_long_hours, now)])
    for column, start, end in (
        (Contact.created_at, filters.created_from, filters.created_to),
        (Contact.last_activity_at, filters.active_from, filters.active_to),
    ):
        bounds = _date_range(column, start, end)
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

    def column(attribute):
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
    if filters.status:
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
    clauses += _date_range(
        column(Contact.created_at), filters.created_from, filters.created_to
    )
    clauses += _date_range(
        column(Contact.last_activity_at), filters.active_from, filters.active_to
    )
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
            moment = _as_utc(datetime.fromisoformat(str(cursor.value)))
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
        value: int | str = _as_utc(contact.last_activity_at).isoformat()
    else:
        value = contact.id
    return Cursor(sort=sort, value=value, id=contact.id)


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


def _sort_key(sort: str):
    if sort == "last_activity":
        return lambda c: (_as_utc(c.last_activity_at), c.id)
    return lambda c: c.id


def _fetch(user: User, filters: ContactFilters, cursor: Cursor | None, limit: int):
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


# --- Counts -------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    value: int
    capped: bool  # there are more than `value`


def capped_count(user: User, filters: ContactFilters, cap: int | None = None) -> Count:
    """How many visible contacts match, counting at most cap + 1 of them
    (COUNT_CAP by default; per owner branch, see owner_branches)."""
    cap = COUNT_CAP if cap is None else cap
    found = 0
    clauses = [visible_clause(user), *narrowing_clauses(user, filters)]
    for branch in owner_branches(user, filters):
        ids = (
            select(Contact.id).where(*clauses, *branch).limit(cap + 1 - found)
        ).subquery()
        found += db.session.scalar(select(func.count()).select_from(ids)) or 0
        if found > cap:
            break
    return Count(value=min(found, cap), capped=found > cap)


def quick_views_for(user: User) -> tuple[str, ...]:
    """The quick views `user` gets (the queue only for those who assign)."""
    if queue_waiting(user):
        return QUICK_VIEWS + ASSIGNER_QUICK_VIEWS
    return QUICK_VIEWS


def quick_view_filters(hours: int, view: str) -> ContactFilters:
    """The preset filters behind a quick view link."""
    base = ContactFilters(open_too_long_hours=hours)
    if view == "waiting":
        return replace(base, lead="waiting")
    if view == "mine":
        return replace(base, owner="me")
    if view == "unassigned":
        return replace(base, owner="unassigned")
    if view == "open_too_long":
        return replace(base, open_too_long=True)
    return base


def quick_counts(user: User, account: Account) -> dict[str, Count]:
    """Capped counts of each quick view, for the lazily loaded badges."""
    hours = account.open_too_long_hours
    return {
        view: capped_count(user, quick_view_filters(hours, view))
        for view in quick_views_for(user)
    }


def quick_view_of(filters: ContactFilters) -> str | None:
    """Which quick view these filters are exactly, if any."""
    plain = replace(filters, cursor=None, limit=DEFAULT_LIMIT)
    for view in QUICK_VIEWS + ASSIGNER_QUICK_VIEWS:
        if quick_view_filters(filters.open_too_long_hours, view) == plain:
            return view
    return None
