"""Cleaning what a form, the API or an import row says about a contact.

`clean_contact` checks every field at once and raises one ValidationError
naming each bad field; `contact_values` turns cleaned values into a new
contact's columns, with the search forms of its name, phone and email filled
in, so every way of creating a contact stores them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from portal.contacts import normalize
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import Account, Campaign, ContactStatus, Department, Origin

MAX_NAME = 200
MAX_TEXT = 5000
MAX_REASON = 500
MAX_TAGS = 20


@dataclass
class ContactInput:
    """What a form, the API or an import row says about a contact."""

    name: str = ""
    phone: str = ""
    email: str = ""
    department_id: int | None = None
    campaign_id: int | None = None
    tags: list[str] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)
    owner_id: int | None = None  # None: the creator, when they may own
    origin: str = Origin.MANUAL


@dataclass(frozen=True)
class Cleaned:
    name: str
    phone: normalize.Phone | None
    email: str | None
    department: Department | None
    campaign: Campaign | None
    tags: list[str]
    custom: dict[str, str]


def clean_email(raw: str) -> str | None:
    """The email as contacts store and match it (trimmed, lower-cased,
    validated), or None when blank; raises ValidationError naming "email"."""
    email = (raw or "").strip().lower()
    if not email:
        return None
    if len(email) > 254:
        raise ValidationError({"email": _("Use at most %(n)d characters.", n=254)})
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise ValidationError({"email": _("Not a valid email address.")}) from None
    return email


def _in_account(
    model: type[Department] | type[Campaign],
    account: Account,
    row_id: int | str | None,
    field_name: str,
) -> Department | Campaign | None:
    if row_id in (None, ""):
        return None
    try:
        row = db.session.get(model, int(row_id))
    except (TypeError, ValueError):
        row = None
    if row is None or row.account_id != account.id:
        raise ValidationError({field_name: _("Pick from the list.")})
    return row


def clean_contact(account: Account, data: ContactInput) -> Cleaned:
    """Validate every field at once; raises ValidationError naming each."""
    errors: dict[str, str] = {}
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = _("Required.")
    elif len(name) > MAX_NAME:
        errors["name"] = _("Use at most %(n)d characters.", n=MAX_NAME)
    phone = email = department = campaign = None
    if (data.phone or "").strip():
        try:
            phone = normalize.parse_phone(data.phone)
        except ValidationError as exc:
            errors.update(exc.fields)
    try:
        email = clean_email(data.email)
    except ValidationError as exc:
        errors.update(exc.fields)
    if "phone" not in errors and "email" not in errors and not (phone or email):
        errors["phone"] = _("Give a phone number or an email.")
    for model, attr, key in (
        (Department, "department_id", "department"),
        (Campaign, "campaign_id", "campaign"),
    ):
        try:
            found = _in_account(model, account, getattr(data, attr), key)
        except ValidationError as exc:
            errors.update(exc.fields)
        else:
            if model is Department:
                department = found
            else:
                campaign = found
    tags = [" ".join(t.split())[:50] for t in data.tags if t and t.strip()]
    if len(tags) > MAX_TAGS:
        errors["tags"] = _("Use at most %(n)d tags.", n=MAX_TAGS)
    if len(data.custom) > 50 or any(
        len(str(k)) > 50 or len(str(v)) > 500 for k, v in data.custom.items()
    ):
        errors["custom"] = _("Too many or too long custom fields.")
    if errors:
        raise ValidationError(errors)
    return Cleaned(
        name=name,
        phone=phone,
        email=email,
        department=department,
        campaign=campaign,
        tags=sorted(set(tags)),
        custom={str(k): str(v) for k, v in data.custom.items()},
    )


def unowned_contact_values(
    account: Account,
    *,
    name: str,
    phone: normalize.Phone | None,
    email: str | None,
    department_id: int | None,
    campaign_id: int | None,
    origin: str,
    now: datetime,
) -> dict[str, Any]:
    """Every column of a new contact nobody created or owns yet, from
    already cleaned values (for callers that write it in a statement of
    their own)."""
    return contact_values(
        account,
        name,
        phone,
        email,
        now=now,
        origin=origin,
        department_id=department_id,
        campaign_id=campaign_id,
        tags=[],
        custom={},
        status=ContactStatus.NEW,
    )


def contact_values(
    account: Account,
    name: str,
    phone: normalize.Phone | None,
    email: str | None,
    *,
    now: datetime,
    origin: str,
    **columns: Any,
) -> dict[str, Any]:
    """A new contact's columns, with the search forms filled in."""
    return dict(
        account_id=account.id,
        name=name,
        name_search=normalize.fold(name),
        phone=phone.display if phone else None,
        phone_e164=phone.e164 if phone else None,
        phone_national=phone.national if phone else None,
        email=email,
        email_normalized=email,
        origin=origin,
        created_at=now,
        last_activity_at=now,
        **columns,
    )
