"""Users: creation, validation, activation links."""

from __future__ import annotations

from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.auth import service as auth
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import Account, Role, User
from portal.models.base import utcnow
from portal.org import service as org
from portal.queue import enqueue

MAX_EMAIL_LENGTH = 254


@dataclass
class UserInput:
    """What a form, the CLI or an import says about a user."""

    email: str = ""
    name: str = ""
    role_key: str = ""
    language: str | None = None
    password: str | None = None
    team_ids: list[int] = field(default_factory=list)
    unit_ids: list[int] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)
    is_restricted: bool | None = None
    receives_web_leads: bool | None = None
    creates_store_leads: bool | None = None


def clean_email(raw: str) -> str:
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


def _collect(errors: dict[str, str], fn, *args, **kwargs):
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


def create_user(account: Account, data: UserInput) -> User:
    """Create a user and mail an activation link when no password is given.

    Raises ValidationError naming every bad field; nothing is written then.
    """
    errors: dict[str, str] = {}
    email = _collect(errors, clean_email, data.email)
    name = _collect(errors, org.clean_name, data.name)
    role = find_role(account, data.role_key)
    if role is None:
        errors["role"] = _("Unknown role.")
    if data.language and data.language not in current_app.config["LANGUAGES"]:
        errors["language"] = _("Unknown language.")
    if data.password is not None:
        _collect(errors, auth.check_password_strength, data.password)
    if email and email_taken(account, email):
        errors["email"] = _("Another user already has this email.")
    if errors:
        raise ValidationError(errors)

    perms = role.permissions
    user = User(
        account_id=account.id,
        email=email,
        name=name,
        role=role,
        language=data.language or None,
        is_restricted=(
            role.restricted_by_default
            if data.is_restricted is None
            else data.is_restricted
        ),
        receives_web_leads=(
            "leads.receive" in perms
            if data.receives_web_leads is None
            else data.receives_web_leads
        ),
        creates_store_leads=(
            "leads.store" in perms
            if data.creates_store_leads is None
            else data.creates_store_leads
        ),
    )
    db.session.add(user)
    try:
        org.set_memberships(
            account,
            user,
            team_ids=data.team_ids,
            unit_ids=data.unit_ids,
            department_ids=data.department_ids,
        )
    except ValidationError:
        db.session.rollback()
        raise
    nonce = None
    if data.password is not None:
        user.password_hash = auth.hash_password(data.password)
        user.activated_at = utcnow()
    else:
        nonce = auth.issue_activation(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Two admins creating the same email at once: the constraint decides.
        db.session.rollback()
        raise ValidationError(
            {"email": _("Another user already has this email.")}
        ) from None
    if nonce:
        enqueue("jobs.mail.send_activation", user.id, nonce)
    return user


def resend_activation(user: User) -> str:
    """A new activation link (the old one stops working); mailed by a job."""
    nonce = auth.issue_activation(user)
    db.session.commit()
    enqueue("jobs.mail.send_activation", user.id, nonce)
    return nonce


def suspend_user(user: User) -> User:
    """Take the user out at once: every session ends on its next request."""
    from portal.models import UserStatus

    user.status = UserStatus.SUSPENDED
    auth.end_all_sessions(user)
    db.session.commit()
    return user


def reactivate_user(user: User) -> User:
    from portal.models import UserStatus

    user.status = UserStatus.ACTIVE
    db.session.commit()
    return user
