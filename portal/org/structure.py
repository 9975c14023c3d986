"""The structure people belong to: teams, units and departments found or
created by key, and which memberships a role may hold."""

from __future__ import annotations

import re
from typing import TypeVar

from flask_babel import gettext as _
from sqlalchemy import select

from portal.errors import ValidationError
from portal.extensions import db
from portal.models import (
    Account,
    Department,
    Role,
    Team,
    TeamMember,
    Unit,
    UnitMember,
    User,
)

# A row of the structure: the three share account, key and name.
OrgRow = TypeVar("OrgRow", Team, Unit, Department)

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


def clean_key(raw: str, field: str = "key") -> str:
    key = (raw or "").strip().lower()
    if not KEY_PATTERN.match(key):
        raise ValidationError(
            {
                field: _(
                    "Use 1 to 50 lower-case letters, digits, - or _, "
                    "starting with a letter or digit."
                )
            }
        )
    return key


def clean_name(raw: str, field: str = "name", max_length: int = 200) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise ValidationError({field: _("Required.")})
    if len(name) > max_length:
        raise ValidationError({field: _("Use at most %(n)d characters.", n=max_length)})
    return name


def _get_or_create(
    model: type[OrgRow], account: Account, key: str, name: str | None
) -> OrgRow:
    key = clean_key(key)
    row = db.session.scalar(
        select(model).where(model.account_id == account.id, model.key == key)
    )
    if row is None:
        row = model(account_id=account.id, key=key, name=clean_name(name or key))
        db.session.add(row)
        db.session.flush()
    return row


def get_or_create_team(account: Account, key: str, name: str | None = None) -> Team:
    return _get_or_create(Team, account, key, name)


def get_or_create_unit(account: Account, key: str, name: str | None = None) -> Unit:
    return _get_or_create(Unit, account, key, name)


def get_or_create_department(
    account: Account, key: str, name: str | None = None
) -> Department:
    return _get_or_create(Department, account, key, name)


def team_membership_kind(role: Role) -> str | None:
    """ "coordinator", "member", or None when the role may not join teams."""
    if "team.lead" in role.permissions:
        return "coordinator"
    if "team.join" in role.permissions:
        return "member"
    return None


def unit_membership_kind(role: Role) -> str | None:
    """ "manager", "seller", or None when the role may not join units."""
    if "unit.lead" in role.permissions:
        return "manager"
    if "unit.join" in role.permissions:
        return "seller"
    return None


def _in_account(
    model: type[OrgRow], account: Account, ids: list[int], field: str
) -> list[OrgRow]:
    ids = sorted({int(i) for i in ids})
    if not ids:
        return []
    rows = list(
        db.session.scalars(
            select(model).where(model.account_id == account.id, model.id.in_(ids))
        )
    )
    if len(rows) != len(ids):
        raise ValidationError({field: _("Pick from the list.")})
    return rows


def check_memberships(
    account: Account, role: Role, team_ids: list[int], unit_ids: list[int]
) -> dict[str, str]:
    """Field errors for teams/units this role may not join (empty when fine)."""
    errors: dict[str, str] = {}
    if team_ids and team_membership_kind(role) is None:
        errors["teams"] = _(
            "The role %(role)s does not belong to teams.", role=role.display_name
        )
    if unit_ids and unit_membership_kind(role) is None:
        errors["units"] = _(
            "The role %(role)s does not belong to units.", role=role.display_name
        )
    return errors


def set_memberships(
    account: Account,
    user: User,
    *,
    team_ids: list[int],
    unit_ids: list[int],
    department_ids: list[int],
) -> None:
    """Replace the user's teams, units and departments (validated first)."""
    errors = check_memberships(account, user.role, team_ids, unit_ids)
    try:
        teams = _in_account(Team, account, team_ids, "teams")
    except ValidationError as exc:
        errors.update(exc.fields)
        teams = []
    try:
        units = _in_account(Unit, account, unit_ids, "units")
    except ValidationError as exc:
        errors.update(exc.fields)
        units = []
    try:
        departments = _in_account(Department, account, department_ids, "departments")
    except ValidationError as exc:
        errors.update(exc.fields)
        departments = []
    if errors:
        raise ValidationError(errors)
    coordinator = team_membership_kind(user.role) == "coordinator"
    manager = unit_membership_kind(user.role) == "manager"
    # Diff instead of replacing: a new row with the same key as a removed one
    # would collide inside one flush.
    wanted_teams = {team.id: team for team in teams}
    for membership in list(user.team_memberships):
        if membership.team_id not in wanted_teams:
            user.team_memberships.remove(membership)
        else:
            membership.is_coordinator = coordinator
            wanted_teams.pop(membership.team_id)
    for team in wanted_teams.values():
        user.team_memberships.append(TeamMember(team=team, is_coordinator=coordinator))
    wanted_units = {unit.id: unit for unit in units}
    for membership in list(user.unit_memberships):
        if membership.unit_id not in wanted_units:
            user.unit_memberships.remove(membership)
        else:
            membership.is_manager = manager
            wanted_units.pop(membership.unit_id)
    for unit in wanted_units.values():
        user.unit_memberships.append(UnitMember(unit=unit, is_manager=manager))
    user.departments = departments
