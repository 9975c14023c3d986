"""Users: the admin list, creation, editing, suspension and activation links."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from portal.auth import service as auth
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.localtime import time_zones, valid_zone
from portal.models import (
    Account,
    Department,
    Role,
    Team,
    TeamMember,
    Unit,
    UnitMember,
    User,
    UserStatus,
)
from portal.models.base import utcnow
from portal.org import structure
from portal.queue import enqueue
from portal.roulette.switch import take_offline

MAX_EMAIL_LENGTH = 254
T = TypeVar("T")
PAGE_SIZE = 100
# What the admin list can filter on; "pending" is derived (never activated).
STATUS_FILTERS = ("active", "suspended", "pending")


@dataclass
class UserInput:
    """What a form, the CLI or an import says about a user.

    A flag left at None takes the role's default.
    """

    email: str = ""
    name: str = ""
    role_key: str = ""
    language: str | None = None
    time_zone: str | None = None
    password: str | None = None
    team_ids: list[int] = field(default_factory=list)
    unit_ids: list[int] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)
    is_restricted: bool | None = None
    receives_web_leads: bool | None = None
    creates_store_leads: bool | None = None


@dataclass
class UserFilters:
    """The admin list's search: text, role key, status and the keyset cursor."""

    q: str = ""
    role: str = ""
    status: str = ""
    after: int | None = None


@dataclass
class UserPage:
    users: list[User]
    next_after: int | None  # the id to continue after, or None on the last page


FLAGS = ("is_restricted", "receives_web_leads", "creates_store_leads")


def clean_email(raw: str) -> str:
    """The email lower-cased and checked; raises ValidationError on "email"."""
    email = auth.normalise_email(raw)
    if not email:
        raise ValidationError({"email": _("Required.")})
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(
            {"email": _("Use at most %(n)d characters.", n=MAX_EMAIL_LENGTH)}
        )
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise ValidationError({"email": _("Not a valid email address.")}) from None
    return email


P = ParamSpec("P")
T = TypeVar("T")


def _collect(
    errors: dict[str, str], fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T | None:
    try:
        return fn(*args, **kwargs)
    except ValidationError as exc:
        errors.update(exc.fields)
        return None


def find_role(account: Account, key: str) -> Role | None:
    return db.session.scalar(
        select(Role).where(Role.account_id == account.id, Role.key == (key or ""))
    )


def email_taken(account: Account, email: str, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.account_id == account.id, User.email == email)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return db.session.scalar(query) is not None


def role_flag_defaults(role: Role) -> dict[str, bool]:
    """The flags a user of `role` gets unless an admin says otherwise."""
    perms = role.permissions
    return {
        "is_restricted": role.restricted_by_default,
        "receives_web_leads": "leads.receive" in perms,
        "creates_store_leads": "leads.store" in perms,
    }


def _check_input(
    account: Account, data: UserInput, *, except_id: int | None = None
) -> tuple[str, str, Role]:
    """Clean email, name and role and check every other field of `data`.

    Raises ValidationError naming every bad field at once.
    """
    errors: dict[str, str] = {}
    email = _collect(errors, clean_email, data.email)
    name = _collect(errors, structure.clean_name, data.name)
    role = find_role(account, data.role_key)
    if role is None:
        errors["role"] = _("Unknown role.")
    else:
        errors.update(
            structure.check_memberships(account, role, data.team_ids, data.unit_ids)
        )
    if data.language and data.language not in current_app.config["LANGUAGES"]:
        errors["language"] = _("Unknown language.")
    if data.time_zone and not valid_zone(data.time_zone):
        errors["time_zone"] = _("Unknown time zone.")
    if data.password is not None:
        _collect(errors, auth.check_password_strength, data.password)
    if email and email_taken(account, email, except_id):
        errors["email"] = _("Another user already has this email.")
    if errors:
        raise ValidationError(errors)
    return email, name, role


def _apply_flags(user: User, role: Role, data: UserInput) -> None:
    defaults = role_flag_defaults(role)
    for flag in FLAGS:
        explicit = getattr(data, flag)
        setattr(user, flag, defaults[flag] if explicit is None else explicit)


def _save_memberships_and_commit(account: Account, user: User, data: UserInput) -> None:
    """Memberships, then commit; on any error nothing of the change stays."""
    try:
        structure.set_memberships(
            account,
            user,
            team_ids=data.team_ids,
            unit_ids=data.unit_ids,
            department_ids=data.department_ids,
        )
        db.session.commit()
    except ValidationError:
        db.session.rollback()
        raise
    except IntegrityError:
        # Two admins saving the same email at once: the constraint decides.
        db.session.rollback()
        raise ValidationError(
            {"email": _("Another user already has this email.")}
        ) from None


def create_user(account: Account, data: UserInput) -> User:
    """Create a user and mail an activation link when no password is given.

    Raises ValidationError naming every bad field; nothing is written then.
    """
    email, name, role = _check_input(account, data)
    user = User(
        account_id=account.id,
        email=email,
        name=name,
        role=role,
        language=data.language or None,
        time_zone=data.time_zone or None,
    )
    _apply_flags(user, role, data)
    db.session.add(user)
    nonce = None
    if data.password is not None:
        user.password_hash = auth.hash_password(data.password)
        user.activated_at = utcnow()
    else:
        nonce = auth.issue_activation(user)
    _save_memberships_and_commit(account, user, data)
    if nonce:
        enqueue("jobs.mail.send_activation", user.id, nonce)
    return user


def update_user(
    account: Account, user: User, data: UserInput, *, acting_user: User | None = None
) -> User:
    """Change a user's email, name, role, language, time zone, memberships
    and flags.

    `data.password` is ignored: passwords change through activation links.
    Raises ValidationError (same rules as creation, plus: an admin may not take
    away their own right to manage users); nothing is written then.
    """
    email, name, role = _check_input(account, data, except_id=user.id)
    if (
        acting_user is not None
        and acting_user.id == user.id
        and "users.manage" not in role.permissions
    ):
        raise ValidationError(
            {"role": _("You cannot take away your own right to manage users.")}
        )
    user.email = email
    user.name = name
    user.role = role
    user.language = data.language or None
    user.time_zone = data.time_zone or None
    _apply_flags(user, role, data)
    _save_memberships_and_commit(account, user, data)
    return user


def get_user(account: Account, user_id: int) -> User:
    """The account's user with this id; raises NotFound (also for deleted)."""
    user = db.session.scalar(
        select(User).where(
            User.id == user_id,
            User.account_id == account.id,
            User.status != UserStatus.DELETED,
        )
    )
    if user is None:
        raise NotFound(_("There is nothing here, or you may not see it."))
    return user


def display_status(user: User) -> str:
    """The list's status: active, suspended or pending (never activated)."""
    if user.status == UserStatus.SUSPENDED:
        return "suspended"
    if user.activated_at is None:
        return "pending"
    return "active"


def _sort_key() -> ColumnElement[str]:
    # Case-insensitive by name, then id so that equal names page stably.
    return func.lower(User.name)


def list_users(account: Account, filters: UserFilters) -> UserPage:
    """One page of the admin list, ordered by name, with memberships loaded.

    Keyset pagination: `filters.after` is the last id of the previous page.
    """
    query = (
        select(User)
        .where(User.account_id == account.id, User.status != UserStatus.DELETED)
        .options(
            selectinload(User.team_memberships).joinedload(TeamMember.team),
            selectinload(User.unit_memberships).joinedload(UnitMember.unit),
            selectinload(User.departments),
        )
    )
    text = filters.q.strip()
    if text:
        query = query.where(
            or_(
                User.name.icontains(text, autoescape=True),
                User.email.icontains(text.lower(), autoescape=True),
            )
        )
    if filters.role:
        query = query.where(
            User.role_id
            == select(Role.id)
            .where(Role.account_id == account.id, Role.key == filters.role)
            .scalar_subquery()
        )
    if filters.status == "suspended":
        query = query.where(User.status == UserStatus.SUSPENDED)
    elif filters.status == "pending":
        query = query.where(
            User.status == UserStatus.ACTIVE, User.activated_at.is_(None)
        )
    elif filters.status == "active":
        query = query.where(
            User.status == UserStatus.ACTIVE, User.activated_at.is_not(None)
        )
    sort_key = _sort_key()
    if filters.after is not None:
        after_key = (
            select(func.lower(User.name))
            .where(User.id == filters.after, User.account_id == account.id)
            .scalar_subquery()
        )
        query = query.where(
            or_(
                sort_key > after_key,
                and_(sort_key == after_key, User.id > filters.after),
            )
        )
    query = query.order_by(sort_key, User.id).limit(PAGE_SIZE + 1)
    users = list(db.session.scalars(query))
    next_after = users[PAGE_SIZE - 1].id if len(users) > PAGE_SIZE else None
    return UserPage(users=users[:PAGE_SIZE], next_after=next_after)


@dataclass
class FormChoices:
    roles: list[Role]
    teams: list[Team]
    units: list[Unit]
    departments: list[Department]
    time_zones: list[str]


# What the user form offers by name.
Named = TypeVar("Named", Role, Team, Unit, Department)


def form_choices(account: Account) -> FormChoices:
    """What the user form offers: roles, teams, units and departments by name."""

    def by_name(model: type[Named]) -> list[Named]:
        return list(
            db.session.scalars(
                select(model)
                .where(model.account_id == account.id)
                .order_by(func.lower(model.name), model.id)
            )
        )

    return FormChoices(
        roles=list(
            db.session.scalars(
                select(Role)
                .where(Role.account_id == account.id)
                .options(joinedload(Role.grants))
                .order_by(Role.builtin.desc(), Role.id)
            ).unique()
        ),
        teams=by_name(Team),
        units=by_name(Unit),
        departments=by_name(Department),
        time_zones=time_zones(),
    )


def resend_activation(user: User) -> str:
    """A new activation link (the old one stops working); mailed by a job.

    Raises ValidationError when the user already activated or is suspended.
    """
    if user.activated_at is not None:
        raise ValidationError(
            {"activation": _("%(name)s has already activated.", name=user.name)}
        )
    if user.status != UserStatus.ACTIVE:
        raise ValidationError(
            {"activation": _("Reactivate %(name)s first.", name=user.name)}
        )
    nonce = auth.issue_activation(user)
    db.session.commit()
    enqueue("jobs.mail.send_activation", user.id, nonce)
    return nonce


def outbox_mode() -> bool:
    """True when mail goes to the local outbox (no SMTP configured)."""
    return not current_app.config.get("MAIL_URL")


def current_activation_link(user: User) -> str:
    """The working activation link of a pending user, for the admin to pass on.

    Only in outbox mode, where no mail leaves the machine. Raises NotFound when
    mail is really sent or the user has no live link.
    """
    if (
        not outbox_mode()
        or user.activated_at is not None
        or user.status != UserStatus.ACTIVE
        or not user.activation_nonce
    ):
        raise NotFound(_("There is no activation link to show."))
    return auth.activation_url(user.id, user.activation_nonce)


def suspend_user(user: User, *, acting_user: User | None = None) -> User:
    """Take the user out at once: every session ends on its next request.

    Raises ValidationError when `acting_user` tries to suspend themselves.
    """
    if acting_user is not None and acting_user.id == user.id:
        raise ValidationError({"status": _("You cannot suspend yourself.")})
    user.status = UserStatus.SUSPENDED
    auth.end_all_sessions(user)
    db.session.commit()
    # Offline at once: sockets closed, a pending offer passed to the next.
    take_offline(user)
    return user


def reactivate_user(user: User) -> User:
    """Let a suspended user sign in again (a pending one may activate again)."""
    user.status = UserStatus.ACTIVE
    db.session.commit()
    return user
