"""The catalogue of permissions and the built-in role presets.

Views and services check permissions by name (`require("users.manage")`),
never role keys: a custom role composed by an admin then works everywhere.
It lives with the models because a built-in `Role` is named from its preset
here, and models import no feature.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class Permission:
    key: str
    label: object  # a lazy string, rendered in the user's language
    group: object


_ADMIN = _l("Administration")
_CONTACTS = _l("Contacts and leads")
_STRUCTURE = _l("Structure")
_REPORTS = _l("Reports")

PERMISSIONS: tuple[Permission, ...] = (
    Permission("users.manage", _l("Manage users"), _ADMIN),
    Permission("users.view_as", _l("View the portal as another user"), _ADMIN),
    Permission("teams.manage", _l("Manage teams"), _ADMIN),
    Permission("units.manage", _l("Manage units"), _ADMIN),
    Permission("departments.manage", _l("Manage departments"), _ADMIN),
    Permission("roles.manage", _l("Manage roles"), _ADMIN),
    Permission("settings.manage", _l("Change account settings"), _ADMIN),
    Permission("api_keys.manage", _l("Manage API keys"), _ADMIN),
    Permission("jobs.manage", _l("See, resume and cancel background jobs"), _ADMIN),
    Permission("task_rules.manage", _l("Compose automatic task rules"), _ADMIN),
    Permission("contacts.view_all", _l("See every contact"), _CONTACTS),
    Permission(
        "contacts.view_teams", _l("See the contacts of the teams I lead"), _CONTACTS
    ),
    Permission(
        "contacts.view_units", _l("See the contacts of the units I manage"), _CONTACTS
    ),
    Permission("contacts.view_own", _l("See my own contacts"), _CONTACTS),
    Permission("contacts.claim", _l("Take unassigned contacts"), _CONTACTS),
    Permission("contacts.assign", _l("Assign contacts to others"), _CONTACTS),
    Permission("contacts.create", _l("Create contacts"), _CONTACTS),
    Permission("contacts.import", _l("Import contacts"), _CONTACTS),
    Permission("contacts.export", _l("Export contacts"), _CONTACTS),
    Permission("leads.receive", _l("Receive web leads"), _CONTACTS),
    Permission("leads.store", _l("Enter store leads"), _CONTACTS),
    Permission("leads.route", _l("Route walk-in leads"), _CONTACTS),
    Permission("invoices.work", _l("Work invoices of granted products"), _CONTACTS),
    Permission("team.join", _l("Belong to a team"), _STRUCTURE),
    Permission("team.lead", _l("Coordinate teams"), _STRUCTURE),
    Permission("unit.join", _l("Belong to a unit as a seller"), _STRUCTURE),
    Permission("unit.lead", _l("Manage units"), _STRUCTURE),
    Permission("dashboard.view", _l("Supervision dashboard"), _REPORTS),
    Permission("reports.view", _l("Reports by origin, source and campaign"), _REPORTS),
    Permission("ranking.view", _l("Ranking screen"), _REPORTS),
)

PERMISSION_KEYS: frozenset[str] = frozenset(p.key for p in PERMISSIONS)


@dataclass(frozen=True)
class RolePreset:
    key: str
    name: object
    permissions: frozenset[str]
    restricted_by_default: bool = False


_AGENT_BASE = {"contacts.view_own", "contacts.claim", "contacts.create"}

ROLE_PRESETS: tuple[RolePreset, ...] = (
    RolePreset("admin", _l("Administrator"), PERMISSION_KEYS),
    RolePreset(
        "coordinator",
        _l("Coordinator"),
        frozenset(
            _AGENT_BASE
            | {
                "contacts.view_teams",
                "contacts.assign",
                "contacts.export",
                "team.lead",
                "dashboard.view",
                "ranking.view",
            }
        ),
        restricted_by_default=True,
    ),
    RolePreset(
        "manager",
        _l("Manager"),
        frozenset(
            _AGENT_BASE
            | {
                "contacts.view_units",
                "contacts.assign",
                "contacts.export",
                "contacts.import",
                "unit.lead",
                "dashboard.view",
                "ranking.view",
                "task_rules.manage",
            }
        ),
        restricted_by_default=True,
    ),
    RolePreset(
        "attendant",
        _l("Attendant"),
        frozenset(_AGENT_BASE | {"leads.receive", "team.join"}),
        restricted_by_default=True,
    ),
    RolePreset(
        "seller",
        _l("Seller"),
        frozenset(_AGENT_BASE | {"leads.store", "unit.join"}),
        restricted_by_default=True,
    ),
    RolePreset(
        "reception",
        _l("Reception"),
        frozenset({"contacts.create", "leads.store", "leads.route"}),
        restricted_by_default=True,
    ),
    RolePreset("media", _l("Marketing"), frozenset({"reports.view"})),
    RolePreset("ranking", _l("Ranking screen"), frozenset({"ranking.view"})),
    RolePreset(
        "callcenter",
        _l("Call center"),
        frozenset(
            {"contacts.view_own", "contacts.claim", "invoices.work", "team.join"}
        ),
        restricted_by_default=True,
    ),
)

PRESETS_BY_KEY = {preset.key: preset for preset in ROLE_PRESETS}


def grouped_permissions() -> list[tuple[object, list[Permission]]]:
    """Permissions grouped for the role editor, in catalogue order."""
    groups: dict[int, tuple[object, list[Permission]]] = {}
    for perm in PERMISSIONS:
        groups.setdefault(id(perm.group), (perm.group, []))[1].append(perm)
    return list(groups.values())
