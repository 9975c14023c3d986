"""Reading the user form and the list's query string into service inputs.

Field names are the service's error keys, so each message lands next to its
field: email, name, role, language, time zone, password, teams, units,
departments and the three flags.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from portal.ids import parse_id
from portal.models import User
from portal.users.service import (
    FLAGS,
    STATUS_FILTERS,
    UserFilters,
    UserInput,
    role_flag_defaults,
)

MEMBERSHIP_FIELDS = ("teams", "units", "departments")
# Tri-state flag selects: "" keeps the role's default.
FLAG_VALUES = {"": None, "1": True, "0": False}
MAX_QUERY_LENGTH = 200


def filters_from_args(args: Mapping[str, str]) -> UserFilters:
    """The list filters; anything unexpected is ignored rather than refused."""
    status = args.get("status", "")
    after = args.get("after", "")
    return UserFilters(
        q=(args.get("q") or "").strip()[:MAX_QUERY_LENGTH],
        role=(args.get("role") or "")[:50],
        status=status if status in STATUS_FILTERS else "",
        after=parse_id(after),
    )


def _ids(form: MultiDict, name: str, errors: dict[str, str]) -> list[int]:
    ids = []
    for raw in form.getlist(name):
        if parse_id(raw) is None:
            errors[name] = _("Pick from the list.")
            continue
        ids.append(int(raw))
    return ids


def _flag(form: MultiDict, name: str, errors: dict[str, str]) -> bool | None:
    raw = form.get(name, "")
    if raw not in FLAG_VALUES:
        errors[name] = _("Pick from the list.")
        return None
    return FLAG_VALUES[raw]


def user_input_from_form(
    form: MultiDict, *, with_password: bool
) -> tuple[UserInput, dict[str, str]]:
    """The form as a UserInput, plus errors for values no form could send.

    An empty password means "mail an activation link".
    """
    errors: dict[str, str] = {}
    password = form.get("password", "") if with_password else ""
    data = UserInput(
        email=form.get("email", ""),
        name=form.get("name", ""),
        role_key=form.get("role", ""),
        language=form.get("language", "") or None,
        time_zone=form.get("time_zone", "") or None,
        password=password or None,
        team_ids=_ids(form, "teams", errors),
        unit_ids=_ids(form, "units", errors),
        department_ids=_ids(form, "departments", errors),
    )
    for flag in FLAGS:
        setattr(data, flag, _flag(form, flag, errors))
    return data, errors


def values_from_form(form: MultiDict) -> dict:
    """What the admin typed, to show again next to the errors (no password)."""
    values: dict = {
        key: form.get(key, "")
        for key in ("email", "name", "role", "language", "time_zone")
    }
    for name in MEMBERSHIP_FIELDS:
        values[name] = set(form.getlist(name))
    for flag in FLAGS:
        values[flag] = form.get(flag, "")
    return values


def values_for_user(user: User) -> dict:
    """The edit form's starting values.

    A flag equal to the role's default shows as "role default", so that a
    role change then brings the new role's default with it.
    """
    defaults = role_flag_defaults(user.role)
    values: dict = {
        "email": user.email,
        "name": user.name,
        "role": user.role.key,
        "language": user.language or "",
        "time_zone": user.time_zone or "",
        "teams": {str(m.team_id) for m in user.team_memberships},
        "units": {str(m.unit_id) for m in user.unit_memberships},
        "departments": {str(d.id) for d in user.departments},
    }
    for flag in FLAGS:
        current = getattr(user, flag)
        values[flag] = "" if current == defaults[flag] else ("1" if current else "0")
    return values


def empty_values() -> dict:
    return values_from_form(MultiDict())
