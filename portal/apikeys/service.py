"""API keys: created and revoked by admins, presented as bearer tokens.

A key is `rl_` followed by 43 characters of `secrets.token_urlsafe(32)`, i.e.
256 random bits. Only its SHA-256 is stored. A slow password hash (Argon2)
protects low-entropy secrets people choose; nobody can guess 256 random bits,
so a fast hash loses nothing, costs microseconds on every API request, and
is deterministic, so the stored hash is also the index we look the key up
by. The plain key exists only in the answer to its creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.database import column_param
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.ids import parse_id
from portal.models import Account, ApiKey, User
from portal.models.base import utcnow

KEY_PREFIX = "rl_"
PREFIX_LENGTH = 11  # "rl_" and 8 random characters: enough to tell keys apart
MAX_NAME = 100
# A real key is 46 characters; anything much longer is not worth hashing.
MAX_PRESENTED = 200
# last_used_at is written at most this often per key, not on every request.
USE_RESOLUTION = timedelta(minutes=1)

SCOPES = {
    "leads:write": _l("Send leads (POST /api/v1/leads)"),
    "leads:read": _l("Read leads and their offers (GET /api/v1/leads/{id})"),
    "contacts:read": _l("List contacts (GET /api/v1/contacts)"),
}


@dataclass(frozen=True)
class NewKey:
    """A key just created; `secret` is shown once and never stored."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a presented key (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """Known scopes, deduplicated, in the canonical order; raises
    ValidationError when none is given or one is unknown."""
    chosen = {s.strip() for s in scopes if s and s.strip()}
    unknown = sorted(chosen - SCOPES.keys())
    if unknown:
        raise ValidationError(
            {
                "scopes": _(
                    "Unknown scope: %(scopes)s. Known scopes: %(known)s.",
                    scopes=", ".join(unknown),
                    known=", ".join(SCOPES),
                )
            }
        )
    if not chosen:
        raise ValidationError({"scopes": _("Pick at least one scope.")})
    return [s for s in SCOPES if s in chosen]


def create_key(
    account: Account,
    name: str,
    scopes: list[str] | tuple[str, ...],
    created_by: User | None = None,
) -> NewKey:
    """Create and commit a key; the returned secret is its only copy.

    Raises ValidationError naming `name` and/or `scopes`.
    """
    errors: dict[str, str] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = _("Required.")
    elif len(name) > MAX_NAME:
        errors["name"] = _("Use at most %(n)d characters.", n=MAX_NAME)
    chosen: list[str] = []
    try:
        chosen = clean_scopes(scopes)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=account.id,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        key_hash=hash_key(secret),
        scopes=" ".join(chosen),
        created_by_id=created_by.id if created_by else None,
        created_at=utcnow(),
    )
    db.session.add(key)
    db.session.commit()
    return NewKey(key=key, secret=secret)


def list_keys(account: Account) -> list[ApiKey]:
    """Every key of the account, newest first (revoked ones too)."""
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.account_id == account.id)
            .order_by(ApiKey.id.desc())
        )
    )


def get_key(account: Account, key_id: int | str) -> ApiKey:
    """The account's key `key_id`; raises NotFound."""
    wanted = parse_id(key_id)
    key = db.session.get(ApiKey, wanted) if wanted is not None else None
    if key is None or key.account_id != account.id:
        raise NotFound()
    return key


def revoke_key(account: Account, key_id: int | str) -> ApiKey:
    """Revoke at once (the next request with it answers 401). Revoking a
    revoked key changes nothing. Raises NotFound."""
    key = get_key(account, key_id)
    if key.revoked_at is None:
        now = utcnow()
        db.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.refresh(key)
    return key


def scopes_of(key: ApiKey) -> frozenset[str]:
    return frozenset(key.scopes.split())


# Every API request runs it. Built once, the digest as a parameter: building
# the statement anew cost about as much CPU as running it.
_KEY_AND_ACCOUNT = (
    select(ApiKey, Account)
    .join(Account, Account.id == ApiKey.account_id)
    .where(ApiKey.key_hash == column_param(ApiKey.__table__.c.key_hash, "presented_"))
)


def authenticate(presented: str) -> tuple[ApiKey, Account] | None:
    """The live key (and its account) a bearer token names, or None for a
    malformed, unknown or revoked one. One indexed SELECT."""
    if (
        not presented
        or len(presented) > MAX_PRESENTED
        or not presented.startswith(KEY_PREFIX)
    ):
        return None
    digest = hash_key(presented)
    row = db.session.execute(_KEY_AND_ACCOUNT, {"presented_key_hash": digest}).first()
    if row is None:
        return None
    key, account = row
    # The index found it by equality already; comparing again in constant
    # time keeps the final decision free of a timing side channel.
    if not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        return None
    return key, account


def mark_used(key: ApiKey, now: datetime | None = None) -> bool:
    """Record that the key was used, at most once per USE_RESOLUTION; True
    when this call wrote. Commits only when it writes.

    The key row is read on every request anyway, so a fresh `last_used_at`
    costs no query; a stale one is updated conditionally, so of many
    concurrent requests at the minute's turn at most a few write and one
    changes the row.
    """
    now = now or utcnow()
    last = key.last_used_at
    if last is not None and now - last < USE_RESOLUTION:
        return False
    cutoff = now - USE_RESOLUTION
    written = db.session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= cutoff),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    # As loaded, not as a change: a later flush must not write it again.
    set_committed_value(key, "last_used_at", now)
    return bool(written)
