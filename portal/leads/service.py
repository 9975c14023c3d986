"""Lead intake: a lead from the API becomes a contact's new lead, once.

What keeps the promises (CONTRACT "Lead intake API"):
- All or nothing: the contact (when new) and the lead are written in one
  transaction; any error rolls both back.
- Once per external_id: the unique constraint (account_id, external_id)
  decides between concurrent requests. The loser's transaction rolls back
  (its new contact with it) and it answers with the winner's lead, so 20
  identical requests at once make one lead and at most one offer.
- Routing happens after the commit (`route_lead` needs a committed "queued"
  lead) and only by the request that created the lead; a failure there
  leaves the lead queued for the sweeper instead of failing the request.

The hot path is a handful of indexed statements: the external_id probe, the
department/campaign keys, the match by phone/email, two INSERTs, one COMMIT,
then the roulette's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask_babel import gettext as _
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from portal.contacts import normalize
from portal.contacts.service import (
    clean_email,
    first_match_id,
    insert_unowned_contact,
)
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.leads.schemas import MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, LeadIn
from portal.models import (
    Account,
    Campaign,
    Contact,
    Department,
    Lead,
    Offer,
    Origin,
    User,
)
from portal.models.base import utcnow

log = logging.getLogger(__name__)

# Ids are 32-bit integers on PostgreSQL; a larger one is no row, not an error.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class CleanLead:
    name: str
    phone: normalize.Phone | None
    email: str | None
    department_id: int | None
    campaign_id: int | None
    source: str | None
    message: str | None
    external_id: str | None
    custom: dict[str, Any]


@dataclass(frozen=True)
class Intake:
    """The outcome of one POST: the lead, and whether this call created it."""

    lead_id: int
    contact_id: int
    state: str
    created: bool


# ------------------------------------------------------------ validation


def _message_for(error: dict) -> str:
    """A pydantic error in plain, translatable words."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = error["loc"][0] if error["loc"] else ""
    if field == "custom":
        if kind == "too_long":
            return _("Use at most %(n)d fields.", n=MAX_CUSTOM_FIELDS)
        if kind == "dict_type":
            return _("Must be an object.")
        if error["loc"][-1] == "[key]":
            return _("Field names must have 1 to %(n)d characters.", n=MAX_CUSTOM_KEY)
        return _("Values must be text, numbers, true, false or null.")
    if kind == "missing":
        return _("Required.")
    if kind == "extra_forbidden":
        return _("Unknown field.")
    if kind == "string_type":
        return _("Must be text.")
    if kind == "string_too_short":
        return _("Required.")
    if kind == "string_too_long":
        return _("Use at most %(n)d characters.", n=ctx.get("max_length", 0))
    return _("Not valid.")


def field_errors(exc: PydanticValidationError) -> dict[str, str]:
    """{top-level field: message}, the first error of each field."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "body"
        errors.setdefault(field, _message_for(error))
    return errors


def _with_nul(payload: dict) -> list[str]:
    """Top-level fields holding a NUL character (in custom: keys or values)."""
    found = []
    for key, value in payload.items():
        if isinstance(value, str):
            bad = "\x00" in value
        elif isinstance(value, dict):
            bad = any(
                "\x00" in k or (isinstance(v, str) and "\x00" in v)
                for k, v in value.items()
            )
        else:
            bad = False
        if bad or "\x00" in key:
            found.append(key)
    return found


def _text(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return (value.strip() or None) if isinstance(value, str) else None


def _id_by_key(model, account: Account, key: str) -> int | None:
    return db.session.scalar(
        select(model.id).where(model.account_id == account.id, model.key == key)
    )


def clean_lead(account: Account, payload: dict) -> CleanLead:
    """Validate every field at once; raises ValidationError naming each bad
    field (unknown fields included)."""
    errors: dict[str, str] = {}
    model = None
    try:
        model = LeadIn.model_validate(payload)
    except PydanticValidationError as exc:
        errors.update(field_errors(exc))
    for field in _with_nul(payload):
        # PostgreSQL text cannot hold NUL; refuse it here, not with a 500.
        errors.setdefault(field, _("Must not contain NUL characters."))

    # The checks below read the raw payload, so they still run (and name
    # their fields) when another field failed the schema.
    phone = email = None
    raw_phone = _text(payload, "phone") if "phone" not in errors else None
    if raw_phone:
        try:
            phone = normalize.parse_phone(raw_phone)
        except ValidationError as exc:
            errors.update(exc.fields)
    raw_email = _text(payload, "email") if "email" not in errors else None
    if raw_email:
        try:
            email = clean_email(raw_email)
        except ValidationError as exc:
            errors.update(exc.fields)
    if "phone" not in errors and "email" not in errors and not (phone or email):
        errors["phone"] = errors["email"] = _("Give a phone number or an email.")

    ids: dict[str, int | None] = {"department": None, "campaign": None}
    for field, model_class in (("department", Department), ("campaign", Campaign)):
        key = _text(payload, field) if field not in errors else None
        if key:
            if model_class is Department:
                key = key.lower()  # department keys are stored lower-case
            ids[field] = _id_by_key(model_class, account, key)
            if ids[field] is None:
                errors[field] = (
                    _("No department has this key.")
                    if model_class is Department
                    else _("No campaign has this key.")
                )
    if errors or model is None:
        raise ValidationError(errors)
    return CleanLead(
        name=model.name,
        phone=phone,
        email=email,
        department_id=ids["department"],
        campaign_id=ids["campaign"],
        source=model.source,
        message=model.message,
        external_id=model.external_id,
        custom=model.custom,
    )


# ---------------------------------------------------------------- intake


def _by_external_id(account: Account, external_id: str) -> Intake | None:
    row = db.session.execute(
        select(Lead.id, Lead.contact_id, Lead.state).where(
            Lead.account_id == account.id, Lead.external_id == external_id
        )
    ).first()
    if row is None:
        return None
    return Intake(
        lead_id=row.id, contact_id=row.contact_id, state=row.state, created=False
    )


def receive_lead(account: Account, payload: dict) -> Intake:
    """Validate, store and (roulette on) route one lead.

    Returns the new lead (created=True), or the lead an earlier request with
    the same external_id created (created=False; nothing is written).
    Raises ValidationError naming each bad field; on any other error nothing
    is written.

    Everything is read and computed before the first write, which is then
    two or three plain statements and the commit: SQLite writes one
    transaction at a time, so the shorter each holds its lock, the more
    leads come in per second.
    """
    data = clean_lead(account, payload)
    if data.external_id:
        earlier = _by_external_id(account, data.external_id)
        if earlier is not None:
            db.session.rollback()
            return earlier
    now = utcnow()
    # The returning customer (same phone or email, oldest first) gets the
    # new lead; else a new contact nobody owns yet.
    contact_id = first_match_id(
        account, data.phone.e164 if data.phone else None, data.email
    )
    lead_values = dict(
        account_id=account.id,
        origin=Origin.WEB,
        source=data.source,
        campaign_id=data.campaign_id,
        department_id=data.department_id,
        message=data.message,
        external_id=data.external_id,
        custom=data.custom,
        state="queued",
        created_at=now,
    )
    try:
        if contact_id is None:
            contact_id = insert_unowned_contact(
                account,
                name=data.name,
                phone=data.phone,
                email=data.email,
                department_id=data.department_id,
                campaign_id=data.campaign_id,
                origin=Origin.WEB,
                now=now,
            )
        else:
            db.session.execute(
                update(Contact)
                .where(Contact.id == contact_id)
                .values(last_activity_at=now)
                .execution_options(synchronize_session=False)
            )
        lead_id = db.session.execute(
            _INSERT_LEAD, {"contact_id": contact_id, **lead_values}
        ).scalar_one()
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        # A concurrent request with the same external_id committed first.
        earlier = (
            _by_external_id(account, data.external_id) if data.external_id else None
        )
        if earlier is None:
            raise
        db.session.rollback()
        return earlier
    except BaseException:
        db.session.rollback()
        raise
    state = _route(lead_id) if account.roulette_enabled else "queued"
    return Intake(lead_id=lead_id, contact_id=contact_id, state=state, created=True)


# One statement for every lead, values as parameters (see _INSERT_CONTACT).
_INSERT_LEAD = insert(Lead.__table__).returning(Lead.__table__.c.id)


def _route(lead_id: int) -> str:
    """Offer the committed lead; its state afterwards (queued when routing
    failed: the sweeper offers it later)."""
    from portal.roulette.service import HANDED_TO_ROUTER, route_soon

    try:
        placed = route_soon(lead_id=lead_id)
    except Exception:
        db.session.rollback()
        log.exception("routing lead %s failed; it waits for the sweep", lead_id)
        return "queued"
    if placed == HANDED_TO_ROUTER:
        return "queued"  # as committed; the router's offer follows
    if placed is not None:
        return "offered"
    # Routed here without an offer: a rival routing or a quick accept may
    # have moved it on already.
    return db.session.scalar(select(Lead.state).where(Lead.id == lead_id)) or "queued"


# ---------------------------------------------------------------- reading


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z (SQLite hands back naive UTC datetimes)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def lead_detail(account: Account, lead_id: int) -> dict:
    """The lead, who took it, and every offer made of it (oldest first).
    Raises NotFound for a lead of another account or none."""
    lead = db.session.get(Lead, lead_id) if 0 < lead_id <= MAX_ID else None
    if lead is None or lead.account_id != account.id:
        raise NotFound()
    owner = None
    if lead.accepted_by_id is not None:
        user = db.session.get(User, lead.accepted_by_id)
        if user is not None:
            owner = {"id": user.id, "name": user.name}
    offers = db.session.execute(
        select(Offer.agent_id, Offer.state, Offer.offered_at, Offer.decided_at)
        .where(Offer.lead_id == lead.id)
        .order_by(Offer.id)
    )
    return {
        "id": lead.id,
        "contact_id": lead.contact_id,
        "state": lead.state,
        "owner": owner,
        "offers": [
            {
                "agent_id": row.agent_id,
                "state": row.state,
                "offered_at": iso(row.offered_at),
                "decided_at": iso(row.decided_at),
            }
            for row in offers
        ],
    }
