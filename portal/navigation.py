"""The top navigation: only what the signed-in user may use."""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object
    permissions: tuple[str, ...]


CONTACT_VIEW_PERMISSIONS = (
    "contacts.view_all",
    "contacts.view_teams",
    "contacts.view_units",
    "contacts.view_own",
    "contacts.claim",
    "contacts.assign",
)

REPORT_ITEMS = (
    NavItem("dashboard.index", _l("Dashboard"), ("dashboard.view",)),
    NavItem("board.index", _l("Roulette board"), ("dashboard.view",)),
    NavItem("reports.origins", _l("Reports"), ("reports.view",)),
    NavItem("reports.ranking", _l("Ranking"), ("ranking.view",)),
)

ADMIN_ITEMS = (
    NavItem("users.index", _l("Users"), ("users.manage",)),
    NavItem("org.teams", _l("Teams"), ("teams.manage",)),
    NavItem("org.units", _l("Units"), ("units.manage",)),
    NavItem("org.departments", _l("Departments"), ("departments.manage",)),
    NavItem("roles.index", _l("Roles"), ("roles.manage",)),
    NavItem("settings.index", _l("Settings"), ("settings.manage",)),
    NavItem("apikeys.index", _l("API keys"), ("api_keys.manage",)),
    NavItem("jobs_admin.index", _l("Jobs"), ("jobs.manage",)),
    NavItem("task_rules.index", _l("Automatic tasks"), ("task_rules.manage",)),
)


def navigation() -> list[dict]:
    """Items for the current user, each {url, label, endpoint}."""
    if not current_user.is_authenticated:
        return []
    items = [NavItem("main.home", _l("Home"), ())]
    contacts = NavItem("contacts.index", _l("Contacts"), CONTACT_VIEW_PERMISSIONS)
    if any(current_user.can(p) for p in contacts.permissions):
        items.append(contacts)
    if current_user.can("contacts.create"):
        # A receptionist's whole job: first thing in the bar, one tap away.
        items.append(NavItem("contacts.new", _l("New contact"), ("contacts.create",)))
    items.append(NavItem("tasks.index", _l("Tasks"), ()))
    items += [item for item in REPORT_ITEMS if current_user.can(item.permissions[0])]
    items += [
        item
        for item in ADMIN_ITEMS
        if any(current_user.can(p) for p in item.permissions)
    ]
    return [
        {"url": url_for(i.endpoint), "label": i.label, "endpoint": i.endpoint}
        for i in items
    ]
