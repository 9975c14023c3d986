"""Roles: the built-in presets (read-only) and the custom roles admins compose.

Nobody may grant a permission they do not hold themselves, nor change a role
that holds more than they do: otherwise "manage roles" would be a way to give
yourself everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.extensions import db
from portal.models import Account, Role, RolePermission, User
from portal.models.permissions import PERMISSION_KEYS, PERMISSIONS, ROLE_PRESETS
from portal.org.structure import clean_key, clean_name

T = TypeVar("T")

PERMISSION_ORDER = {p.key: index for index, p in enumerate(PERMISSIONS)}
PRESET_ORDER = {p.key: index for index, p in enumerate(ROLE_PRESETS)}


@dataclass
class RoleInput:
    """What the role form says. `key` is read on creation only."""

    key: str = ""
    name: str = ""
    permissions: list[str] = field(default_factory=list)
    restricted_by_default: bool = False


@dataclass
class RoleSummary:
    role: Role
    user_count: int = 0

    @property
    def permissions(self) -> list[str]:
        """The role's permission keys in catalogue order."""
        return sorted(self.role.permissions, key=PERMISSION_ORDER.__getitem__)


def _user_counts(account: Account) -> dict[int, int]:
    # Every user row counts, deleted ones too: they keep their role (their
    # history stays attributed), so the role cannot go while they exist.
    counts = db.session.execute(
        select(User.role_id, func.count())
        .where(User.account_id == account.id)
        .group_by(User.role_id)
    )
    return {role_id: count for role_id, count in counts}


def list_roles(account: Account, query: str = "") -> list[RoleSummary]:
    """Built-in roles in preset order, then custom roles by name, each with
    how many users have it; `query` filters by key or name. Two queries."""
    needle = query.strip().casefold()
    counts = _user_counts(account)
    roles = [
        role
        for role in db.session.scalars(
            select(Role).where(Role.account_id == account.id)
        )
        if needle in role.key.casefold() or needle in role.display_name.casefold()
    ]
    roles.sort(
        key=lambda r: (
            not r.builtin,
            PRESET_ORDER.get(r.key, 0) if r.builtin else 0,
            r.name.casefold(),
        )
    )
    return [RoleSummary(role, counts.get(role.id, 0)) for role in roles]


def get_role(account: Account, role_id: int) -> Role:
    """The account's role, or NotFound (also for another account's role)."""
    role = db.session.get(Role, role_id)
    if role is None or role.account_id != account.id:
        raise NotFound()
    return role


def role_summary(account: Account, role_id: int) -> RoleSummary:
    role = get_role(account, role_id)
    count = db.session.scalar(
        select(func.count()).select_from(User).where(User.role_id == role.id)
    )
    return RoleSummary(role, count or 0)


def grantable_permissions(actor: User | None) -> frozenset[str]:
    """What `actor` may put into a role: what they hold (everything for the
    command line, where there is no actor)."""
    return PERMISSION_KEYS if actor is None else actor.permissions


def _clean_permissions(
    raw: list[str], actor: User | None, errors: dict[str, str]
) -> frozenset[str]:
    wanted = frozenset(p.strip() for p in raw if p.strip())
    unknown = wanted - PERMISSION_KEYS
    if unknown:
        errors["permissions"] = _(
            "Unknown permissions: %(keys)s.", keys=", ".join(sorted(unknown))
        )
    elif not wanted:
        errors["permissions"] = _("Choose at least one permission.")
    elif not wanted <= grantable_permissions(actor):
        beyond = sorted(wanted - grantable_permissions(actor))
        errors["permissions"] = _(
            "You can only grant permissions you hold yourself, not: %(keys)s.",
            keys=", ".join(beyond),
        )
    return wanted


def _check_name(
    account: Account, name: str, errors: dict[str, str], role_id: int | None = None
) -> None:
    """Two roles with one name would be indistinguishable in the user form."""
    for other in db.session.scalars(select(Role).where(Role.account_id == account.id)):
        names = {other.name.casefold(), other.display_name.casefold()}
        if other.id != role_id and name.casefold() in names:
            errors["name"] = _("Another role already has this name.")
            return


def _collect(errors: dict[str, str], clean: Callable[[str], T], raw: str) -> T | None:
    try:
        return clean(raw)
    except ValidationError as exc:
        errors.update(exc.fields)
        return None


def _check_editable(role: Role, actor: User | None) -> None:
    if role.builtin:
        raise Forbidden(_("Built-in roles cannot be changed or deleted."))
    if not role.permissions <= grantable_permissions(actor):
        raise Forbidden(
            _("This role holds permissions you do not have; you cannot change it.")
        )


def _set_grants(role: Role, permissions: frozenset[str]) -> None:
    # Diff the grants: replacing the collection would delete and re-insert rows
    # with the same primary key in one flush, which the unit of work refuses.
    for grant in list(role.grants):
        if grant.permission not in permissions:
            role.grants.remove(grant)
    held = role.permissions
    for permission in sorted(permissions - held, key=PERMISSION_ORDER.__getitem__):
        role.grants.append(RolePermission(permission=permission))


def create_role(account: Account, data: RoleInput, actor: User | None = None) -> Role:
    """A new custom role.

    Raises ValidationError on "key" (bad or taken, any case), "name" (empty,
    too long or taken) and "permissions" (none, unknown, or beyond `actor`'s).
    """
    errors: dict[str, str] = {}
    key = _collect(errors, clean_key, data.key)
    name = _collect(errors, clean_name, data.name)
    permissions = _clean_permissions(data.permissions, actor, errors)
    taken = _("Another role already has this key.")
    if key and db.session.scalar(
        select(Role.id).where(Role.account_id == account.id, Role.key == key)
    ):
        errors["key"] = taken
    if name:
        _check_name(account, name, errors)
    if errors:
        raise ValidationError(errors)
    role = Role(
        account_id=account.id,
        key=key,
        name=name,
        builtin=False,
        restricted_by_default=data.restricted_by_default,
    )
    _set_grants(role, permissions)
    db.session.add(role)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the same key, created a moment ago
        raise ValidationError({"key": taken}) from None
    return role


def update_role(
    account: Account, role_id: int, data: RoleInput, actor: User | None = None
) -> Role:
    """Change a custom role's name, permissions and default restriction; its
    key stays. Its users get the new permissions on their next request.

    Raises NotFound, Forbidden (a built-in role, or one holding permissions
    `actor` lacks) and ValidationError on "name" and "permissions".
    """
    role = get_role(account, role_id)
    _check_editable(role, actor)
    errors: dict[str, str] = {}
    name = _collect(errors, clean_name, data.name)
    permissions = _clean_permissions(data.permissions, actor, errors)
    if name:
        _check_name(account, name, errors, role_id=role.id)
    if errors:
        raise ValidationError(errors)
    role.name = name
    role.restricted_by_default = data.restricted_by_default
    _set_grants(role, permissions)
    db.session.commit()
    return role


def delete_role(account: Account, role_id: int, actor: User | None = None) -> str:
    """Delete a custom role nobody has. Returns its name.

    Raises NotFound, Forbidden (built-in, or beyond `actor`'s permissions) and
    Conflict naming how many users still have it.
    """
    summary = role_summary(account, role_id)
    _check_editable(summary.role, actor)
    if summary.user_count:
        raise Conflict(
            ngettext(
                "%(num)d user has the role %(name)s. Give them another role first.",
                "%(num)d users have the role %(name)s. Give them another role first.",
                summary.user_count,
                name=summary.role.name,
            )
        )
    name = summary.role.name
    db.session.delete(summary.role)
    db.session.commit()
    return name
