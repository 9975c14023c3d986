"""Administration of teams, units and departments: lists, create, rename,
delete, the store flow of a unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.errors import Conflict, NotFound, ValidationError
from portal.extensions import db
from portal.models import (
    Account,
    Contact,
    Department,
    Team,
    TeamMember,
    Unit,
    UnitMember,
    User,
    UserStatus,
)
from portal.models.org import department_member
from portal.org import hours
from portal.org.structure import OrgRow, clean_key, clean_name

# --- Administration of teams, units and departments -------------------------
#
# The three kinds share their rules (a key fixed at creation, a name that can
# change, deletion that either takes members along or is refused) and differ
# in what their lists show. Keys are never renamed: the CLI, the lead API
# (`department`) and imports refer to them.


@dataclass
class TeamSummary:
    team: Team
    coordinators: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)

    @property
    def member_count(self) -> int:
        return len(self.coordinators) + len(self.members)


@dataclass
class UnitSummary:
    unit: Unit
    managers: list[str] = field(default_factory=list)
    sellers: list[str] = field(default_factory=list)

    @property
    def member_count(self) -> int:
        return len(self.managers) + len(self.sellers)


@dataclass
class DepartmentSummary:
    department: Department
    user_count: int = 0
    # "Mon–Fri 08:00–18:00, America/Sao_Paulo" or "Always open".
    hours: str = ""
    # Whether the roulette may offer the department's leads right now.
    open_now: bool = True


def _matches(row: Team | Unit | Department, query: str) -> bool:
    needle = query.casefold()
    return needle in row.key.casefold() or needle in row.name.casefold()


def _rows(
    model: type[OrgRow],
    account: Account,
    query: str = "",
    ids: list[int] | None = None,
) -> list[OrgRow]:
    """The account's rows of `model` matching `query`, sorted by name.

    Filtered in Python: case folding then behaves the same for every language
    on SQLite and PostgreSQL, and structure lists are short.
    """
    statement = select(model).where(model.account_id == account.id)
    if ids is not None:
        statement = statement.where(model.id.in_(ids))
    rows = [row for row in db.session.scalars(statement) if _matches(row, query)]
    return sorted(rows, key=lambda row: (row.name.casefold(), row.key))


def _get(model: type[OrgRow], account: Account, row_id: int) -> OrgRow:
    row = db.session.get(model, row_id)
    if row is None or row.account_id != account.id:
        raise NotFound()
    return row


def get_team(account: Account, team_id: int) -> Team:
    """The account's team, or NotFound (also for another account's team)."""
    return _get(Team, account, team_id)


def get_unit(account: Account, unit_id: int) -> Unit:
    """The account's unit, or NotFound (also for another account's unit)."""
    return _get(Unit, account, unit_id)


def get_department(account: Account, department_id: int) -> Department:
    """The account's department, or NotFound (also for another account's)."""
    return _get(Department, account, department_id)


def list_teams(
    account: Account, query: str = "", ids: list[int] | None = None
) -> list[TeamSummary]:
    """Teams with their coordinators and members, in two queries."""
    summaries = {t.id: TeamSummary(t) for t in _rows(Team, account, query, ids)}
    if summaries:
        memberships = db.session.execute(
            select(TeamMember.team_id, TeamMember.is_coordinator, User.name)
            .join(User, User.id == TeamMember.user_id)
            .where(TeamMember.team_id.in_(summaries), User.status != UserStatus.DELETED)
            .order_by(User.name, User.id)
        )
        for team_id, is_coordinator, name in memberships:
            summary = summaries[team_id]
            (summary.coordinators if is_coordinator else summary.members).append(name)
    return list(summaries.values())


def list_units(
    account: Account, query: str = "", ids: list[int] | None = None
) -> list[UnitSummary]:
    """Units with their managers and sellers, in two queries."""
    summaries = {u.id: UnitSummary(u) for u in _rows(Unit, account, query, ids)}
    if summaries:
        memberships = db.session.execute(
            select(UnitMember.unit_id, UnitMember.is_manager, User.name)
            .join(User, User.id == UnitMember.user_id)
            .where(UnitMember.unit_id.in_(summaries), User.status != UserStatus.DELETED)
            .order_by(User.name, User.id)
        )
        for unit_id, is_manager, name in memberships:
            summary = summaries[unit_id]
            (summary.managers if is_manager else summary.sellers).append(name)
    return list(summaries.values())


def _department_user_counts(department_ids: list[int]) -> dict[int, int]:
    if not department_ids:
        return {}
    counts = db.session.execute(
        select(department_member.c.department_id, func.count())
        .join(User, User.id == department_member.c.user_id)
        .where(
            department_member.c.department_id.in_(department_ids),
            User.status != UserStatus.DELETED,
        )
        .group_by(department_member.c.department_id)
    )
    return {department_id: count for department_id, count in counts}


def list_departments(
    account: Account, query: str = "", ids: list[int] | None = None
) -> list[DepartmentSummary]:
    """Departments with how many users belong to each, in two queries."""
    departments = _rows(Department, account, query, ids)
    counts = _department_user_counts([d.id for d in departments])
    now = datetime.now(UTC)
    return [
        DepartmentSummary(
            d,
            counts.get(d.id, 0),
            hours=hours.hours_summary(d.working_hours, d.timezone),
            open_now=hours.is_open(d.working_hours, d.timezone, now),
        )
        for d in departments
    ]


def _create(
    model: type[OrgRow], account: Account, key: str, name: str, taken_message: str
) -> OrgRow:
    errors: dict[str, str] = {}
    try:
        key = clean_key(key)
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        name = clean_name(name)
    except ValidationError as exc:
        errors.update(exc.fields)
    if "key" not in errors and db.session.scalar(
        select(model.id).where(model.account_id == account.id, model.key == key)
    ):
        errors["key"] = taken_message
    if errors:
        raise ValidationError(errors)
    row = model(account_id=account.id, key=key, name=name)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        # Someone created the same key between our check and the insert.
        db.session.rollback()
        raise ValidationError({"key": taken_message}) from None
    return row


def create_team(account: Account, key: str, name: str) -> Team:
    """A new team. Raises ValidationError on "key" (bad or taken) and "name"."""
    return _create(Team, account, key, name, _("Another team already has this key."))


def create_unit(account: Account, key: str, name: str) -> Unit:
    """A new unit. Raises ValidationError on "key" (bad or taken) and "name"."""
    return _create(Unit, account, key, name, _("Another unit already has this key."))


def create_department(account: Account, key: str, name: str) -> Department:
    """A new department. Raises ValidationError on "key" and "name"."""
    return _create(
        Department, account, key, name, _("Another department already has this key.")
    )


def _rename(row: OrgRow, name: str) -> OrgRow:
    row.name = clean_name(name)
    db.session.commit()
    return row


def rename_team(account: Account, team_id: int, name: str) -> Team:
    """Change a team's name (its key stays). Raises NotFound, ValidationError."""
    return _rename(get_team(account, team_id), name)


def rename_unit(account: Account, unit_id: int, name: str) -> Unit:
    """Change a unit's name (its key stays). Raises NotFound, ValidationError."""
    return _rename(get_unit(account, unit_id), name)


def rename_department(account: Account, department_id: int, name: str) -> Department:
    """Change a department's name (its key stays). Raises NotFound,
    ValidationError."""
    return _rename(get_department(account, department_id), name)


def _check_confirmed(
    summary: TeamSummary | UnitSummary, confirmed_members: int | None, message: str
) -> None:
    # The admin agreed to remove the members they saw; members who arrived
    # since were not part of that agreement.
    if summary.member_count and confirmed_members != summary.member_count:
        raise Conflict(message)


def delete_team(
    account: Account, team_id: int, confirmed_members: int | None = None
) -> str:
    """Delete a team; its members leave it (they stay users).

    A team with members goes only when `confirmed_members` equals how many it
    has now. Returns the team's name. Raises NotFound, Conflict.
    """
    summary = list_teams(account, ids=[get_team(account, team_id).id])[0]
    _check_confirmed(
        summary,
        confirmed_members,
        ngettext(
            "The team %(name)s has %(num)d member now. Confirm again to delete it.",
            "The team %(name)s has %(num)d members now. Confirm again to delete it.",
            summary.member_count,
            name=summary.team.name,
        ),
    )
    return _delete(summary.team)


def delete_unit(
    account: Account, unit_id: int, confirmed_members: int | None = None
) -> str:
    """Delete a unit; its managers and sellers leave it (they stay users).

    A unit with members goes only when `confirmed_members` equals how many it
    has now. Returns the unit's name. Raises NotFound, Conflict.
    """
    summary = list_units(account, ids=[get_unit(account, unit_id).id])[0]
    _check_confirmed(
        summary,
        confirmed_members,
        ngettext(
            "The unit %(name)s has %(num)d member now. Confirm again to delete it.",
            "The unit %(name)s has %(num)d members now. Confirm again to delete it.",
            summary.member_count,
            name=summary.unit.name,
        ),
    )
    return _delete(summary.unit)


def delete_department(account: Account, department_id: int) -> str:
    """Delete a department nobody belongs to. Returns its name.

    Raises NotFound, and Conflict naming how many users still belong to it:
    leads are routed by department, so its users must be moved on purpose.
    """
    summary = list_departments(
        account, ids=[get_department(account, department_id).id]
    )[0]
    if summary.user_count:
        raise Conflict(
            ngettext(
                "%(num)d user belongs to the department %(name)s. "
                "Move them to another department first.",
                "%(num)d users belong to the department %(name)s. "
                "Move them to another department first.",
                summary.user_count,
                name=summary.department.name,
            )
        )
    contacts = db.session.scalar(
        select(func.count(Contact.id)).where(
            Contact.account_id == account.id,
            Contact.department_id == summary.department.id,
        )
    )
    if contacts:
        # Deleting would silently strip these contacts of their department.
        raise Conflict(
            ngettext(
                "%(num)d contact is in the department %(name)s. "
                "Move it to another department first.",
                "%(num)d contacts are in the department %(name)s. "
                "Move them to another department first.",
                contacts,
                name=summary.department.name,
            )
        )
    return _delete(summary.department)


def _delete(row: Team | Unit | Department) -> str:
    name = row.name
    db.session.delete(row)
    db.session.commit()
    return name


def set_store_flow(account: Account, unit_id: int, enabled: bool) -> Unit:
    """Switch the unit's store flow (sellers enter and finish walk-in leads).

    Raises NotFound.
    """
    unit = get_unit(account, unit_id)
    unit.store_flow = enabled
    db.session.commit()
    return unit
