"""Counts and quick views of the contact list.

Counts are capped (`count(*)` over at most COUNT_CAP + 1 ids), so "1000+"
costs the same on ten thousand or ten million rows; a quick view is a named
preset of filters, and its badge is such a count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from portal.contacts.list_filters import DEFAULT_LIMIT, ContactFilters
from portal.contacts.query import narrowing_clauses, owner_branches, queue_waiting
from portal.contacts.scope import visible_clause
from portal.extensions import db
from portal.models import Account, Contact, User

COUNT_CAP = 1000
QUICK_VIEWS = ("all", "mine", "unassigned", "open_too_long")
# Quick views only for those who hand contacts out (contacts.assign).
ASSIGNER_QUICK_VIEWS = ("waiting",)
QUICK_VIEW_LABELS = {
    "all": _l("All I can see"),
    "mine": _l("Mine"),
    "unassigned": _l("Unassigned"),
    "open_too_long": _l("Open too long"),
    "waiting": _l("Waiting in the queue"),
}


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


@dataclass(frozen=True)
class QuickLink:
    view: str
    label: str
    args: dict[str, str]  # the contact list's query string


def quick_links(account: Account, viewer: User) -> list[QuickLink]:
    """The viewer's quick views, each with the list's filters behind it."""
    hours = account.open_too_long_hours
    return [
        QuickLink(
            view=view,
            label=str(QUICK_VIEW_LABELS[view]),
            args=quick_view_filters(hours, view).query_args(),
        )
        for view in quick_views_for(viewer)
    ]
