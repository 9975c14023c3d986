"""The account and its settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.auth.permissions import ROLE_PRESETS
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import Account, ProcessMode, Role, RolePermission


def current_account() -> Account:
    """The deployment's account (one per deployment by default)."""
    account = db.session.scalar(select(Account).order_by(Account.id).limit(1))
    if account is None:
        account = bootstrap_account()
    return account


def bootstrap_account(name: str = "Roleta") -> Account:
    """Create the account and its built-in roles; safe to call again."""
    account = db.session.scalar(select(Account).order_by(Account.id).limit(1))
    if account is None:
        account = Account(name=name)
        db.session.add(account)
        db.session.flush()
    ensure_builtin_roles(account)
    db.session.commit()
    return account


def ensure_builtin_roles(account: Account) -> None:
    """Built-in roles exist with exactly their preset permissions."""
    existing = {
        role.key: role
        for role in db.session.scalars(
            select(Role).where(Role.account_id == account.id)
        )
    }
    for preset in ROLE_PRESETS:
        role = existing.get(preset.key)
        if role is None:
            role = Role(
                account_id=account.id,
                key=preset.key,
                name=str(preset.name),
                builtin=True,
                restricted_by_default=preset.restricted_by_default,
            )
            db.session.add(role)
        if role.builtin and role.permissions != preset.permissions:
            # Diff the grants: a new row with a removed row's key would
            # collide inside one flush.
            for grant in list(role.grants):
                if grant.permission not in preset.permissions:
                    role.grants.remove(grant)
            for permission in sorted(preset.permissions - role.permissions):
                role.grants.append(RolePermission(permission=permission))
    db.session.flush()


@dataclass(frozen=True)
class Setting:
    key: str
    attribute: str
    label: object
    parse: Callable[[str], object]


def _parse_bool(raw: str) -> bool:
    value = str(raw).strip().lower()
    if value in {"true", "1", "yes", "on"}:
        return True
    if value in {"false", "0", "no", "off"}:
        return False
    raise ValueError(_("Use true or false."))


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(_("Use a whole number.")) from None
        if not low <= value <= high:
            raise ValueError(
                _("Use a number from %(low)d to %(high)d.", low=low, high=high)
            )
        return value

    return parse


def _process_mode(raw: str) -> int:
    value = _int_between(1, 3)(raw)
    return int(ProcessMode(value))


SETTINGS: tuple[Setting, ...] = (
    Setting("process_mode", "process_mode", _l("Process mode"), _process_mode),
    Setting("roulette.enabled", "roulette_enabled", _l("Lead roulette"), _parse_bool),
    Setting(
        "roulette.offer_timeout",
        "roulette_offer_timeout",
        _l("Seconds an agent has to answer an offer"),
        _int_between(10, 3600),
    ),
    Setting(
        "roulette.rounds",
        "roulette_rounds",
        _l("Rounds before a lead falls back to the queue"),
        _int_between(1, 20),
    ),
    Setting(
        "contacts.open_too_long_hours",
        "open_too_long_hours",
        _l("Hours without activity before a contact is open too long"),
        _int_between(1, 24 * 90),
    ),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


def settings_dict(account: Account) -> dict[str, object]:
    return {s.key: getattr(account, s.attribute) for s in SETTINGS}


def update_settings(account: Account, values: dict[str, str]) -> Account:
    """Validate every value first, then apply all or nothing.

    Raises ValidationError naming each bad key.
    """
    errors: dict[str, str] = {}
    parsed: dict[str, object] = {}
    for key, raw in values.items():
        setting = SETTINGS_BY_KEY.get(key)
        if setting is None:
            errors[key] = _("Unknown setting.")
            continue
        try:
            parsed[setting.attribute] = setting.parse(raw)
        except ValueError as exc:
            errors[key] = str(exc)
    if errors:
        raise ValidationError(errors)
    for attribute, value in parsed.items():
        setattr(account, attribute, value)
    db.session.commit()
    return account
