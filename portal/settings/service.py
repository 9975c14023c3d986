"""The account and its settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.errors import ValidationError
from portal.extensions import db
from portal.models import Account, ProcessMode, Role, RolePermission
from portal.models.permissions import ROLE_PRESETS


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
    # Shown under the field on the settings page.
    hint: object = None
    # Whole-number settings: the accepted range (the form's min and max).
    low: int | None = None
    high: int | None = None


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


def _number(
    key: str, attribute: str, label: object, low: int, high: int, hint: object = None
) -> Setting:
    """A whole-number setting accepted from `low` to `high`."""
    return Setting(key, attribute, label, _int_between(low, high), hint, low, high)


def _process_mode(raw: str) -> int:
    value = _int_between(1, 3)(raw)
    return int(ProcessMode(value))


SETTINGS: tuple[Setting, ...] = (
    Setting("process_mode", "process_mode", _l("Process mode"), _process_mode),
    Setting("roulette.enabled", "roulette_enabled", _l("Lead roulette"), _parse_bool),
    _number(
        "roulette.offer_timeout",
        "roulette_offer_timeout",
        _l("Seconds an agent has to answer an offer"),
        10,
        3600,
        _l("No answer in time counts as a decline: the lead goes to the next agent."),
    ),
    _number(
        "roulette.rounds",
        "roulette_rounds",
        _l("Rounds before a lead falls back to the queue"),
        1,
        20,
        _l(
            "A round ends when every online agent declined the lead. After the "
            "last round it waits in the queue for agents who have not seen it."
        ),
    ),
    _number(
        "roulette.capacity",
        "roulette_capacity",
        _l("Open leads an agent may hold (0 = no cap)"),
        0,
        1000,
        _l(
            "Leads an agent accepted and has not answered yet. An agent at the "
            "cap is skipped until they answer one."
        ),
    ),
    _number(
        "roulette.queue_alert_minutes",
        "roulette_queue_alert_minutes",
        _l("Minutes a lead may wait in the queue before managers are alerted"),
        1,
        1440,
        _l(
            "The managers of the lead's department (or the administrators) get "
            "a notification."
        ),
    ),
    _number(
        "contacts.open_too_long_hours",
        "open_too_long_hours",
        _l("Hours without activity before a contact is open too long"),
        1,
        24 * 90,
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
