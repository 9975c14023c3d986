"""Passwords, sign-in and activation links."""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.database import column_param
from portal.errors import ServiceError, ValidationError
from portal.extensions import db
from portal.models import Role, User, UserStatus
from portal.models.base import utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


@functools.cache
def _hasher_for(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    """An Argon2id hasher and a dummy hash made with the same cost.

    The dummy is verified against when the email is unknown, so that a miss
    costs as long as a wrong password and timing does not reveal accounts.
    """
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def _hasher() -> tuple[PasswordHasher, str]:
    # Defaults are argon2-cffi's: Argon2id, RFC 9106's low-memory profile.
    # The test suite lowers the cost (PASSWORD_HASH_* in the environment).
    return _hasher_for(
        current_app.config["PASSWORD_HASH_TIME_COST"],
        current_app.config["PASSWORD_HASH_MEMORY_KIB"],
    )


class ActivationError(ServiceError):
    """The activation link is malformed, expired or already used."""


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def hash_password(password: str) -> str:
    return _hasher()[0].hash(password)


def check_password_strength(password: str, field: str = "password") -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            {field: _("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)}
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            {field: _("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH)}
        )


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    hasher, dummy = _hasher()
    stored = user.password_hash if user and user.password_hash else dummy
    try:
        hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash or not user.is_active:
        return None
    if hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.commit()
    return user


# One query for the user, their role and its grants: every request of a
# signed-in user runs it (a plain get would fetch the grants separately).
# Built once: building it anew, its loader options and their cache key
# above all, cost about as much CPU as running it.
_SESSION_USER = (
    select(User)
    .options(joinedload(User.role).joinedload(Role.grants))
    .where(User.id == column_param(User.__table__.c.id, "session_user_"))
)


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's user loader: "<id>:<session_version>", active users only.

    A suspension or password change bumps the version, which signs the user
    out of every session and remember-me cookie on their next request.
    """
    user_id, _sep, version = (session_id or "").partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = (
        db.session.execute(_SESSION_USER, {"session_user_id": int(user_id)})
        .unique()
        .scalar_one_or_none()
    )
    if user is None or user.session_version != int(version) or not user.is_active:
        return None
    return user


def end_all_sessions(user: User) -> None:
    user.session_version = (user.session_version or 0) + 1


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="activation")


def issue_activation(user: User) -> str:
    """Give the user a fresh single-use activation nonce (older links die)."""
    user.activation_nonce = secrets.token_urlsafe(24)
    return user.activation_nonce


def activation_token(user_id: int, nonce: str) -> str:
    return _serializer().dumps({"u": user_id, "n": nonce})


def public_base_url() -> str:
    """Where users reach the portal, for links in mails."""
    configured = current_app.config.get("PUBLIC_URL")
    if configured:
        return configured.rstrip("/")
    if has_request_context():
        return request.host_url.rstrip("/")
    return f"http://localhost:{current_app.config['PORTAL_PORT']}"


def activation_url(user_id: int, nonce: str) -> str:
    token = activation_token(user_id, nonce)
    with current_app.test_request_context(base_url=public_base_url()):
        return url_for("auth.activate", token=token, _external=True)


def user_for_activation(token: str) -> User:
    """The user this link activates; raises ActivationError with the reason."""
    try:
        data = _serializer().loads(
            token, max_age=current_app.config["ACTIVATION_MAX_AGE"]
        )
    except SignatureExpired:
        raise ActivationError(
            _("This activation link has expired. Ask an administrator for a new one.")
        ) from None
    except BadSignature:
        raise ActivationError(_("This activation link is not valid.")) from None
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if (
        user is None
        or user.status != UserStatus.ACTIVE
        or not user.activation_nonce
        or not secrets.compare_digest(user.activation_nonce, str(data.get("n")))
    ):
        raise ActivationError(
            _("This activation link was already used or replaced by a newer one.")
        )
    return user


def activate(token: str, password: str, confirm: str) -> User:
    """Set the password through an activation link, once."""
    user = user_for_activation(token)
    check_password_strength(password)
    if password != confirm:
        raise ValidationError({"confirm": _("The two passwords differ.")})
    # Conditional update: of two tabs submitting the same link, one wins.
    won = db.session.execute(
        db.update(User)
        .where(User.id == user.id, User.activation_nonce == user.activation_nonce)
        .values(
            activation_nonce=None,
            password_hash=hash_password(password),
            activated_at=utcnow(),
            session_version=User.session_version + 1,
        )
    ).rowcount
    if not won:
        db.session.rollback()
        raise ActivationError(_("This activation link was already used."))
    db.session.commit()
    db.session.refresh(user)
    return user
