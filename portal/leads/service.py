"""Lead intake: a lead from the API becomes a contact's new lead, once.

What keeps the promises (CONTRACT "Lead intake API"):
- All or nothing: the contact (when new) and the lead are written in one
  transaction (on PostgreSQL, in one statement); any error writes neither.
- Once per external_id: the unique constraint (account_id, external_id)
  decides between concurrent requests. The loser's write rolls back (its
  new contact with it) and it answers with the winner's lead, so 20
  identical requests at once make one lead and at most one offer.
- Routing happens after the commit (`route_lead` needs a committed "queued"
  lead) and only by the request that created the lead; a failure there
  leaves the lead queued for the sweeper instead of failing the request.

The hot path is one read (the department and campaign keys, the
external_id probe, the match by phone and by email) and one write (two
INSERTs and a COMMIT on SQLite), then the roulette's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Integer, String, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter, Label
from sqlalchemy.sql.selectable import ScalarSelect

from portal.contacts import normalize
from portal.contacts.cleaning import clean_email, unowned_contact_values
from portal.database import column_param, prefixed, reads_outside_transaction
from portal.errors import ValidationError
from portal.extensions import db
from portal.leads.schemas import LeadIn, field_errors
from portal.leads.signals import lead_created
from portal.models import (
    Account,
    Campaign,
    Contact,
    Department,
    Lead,
    LeadState,
    Origin,
)
from portal.models.base import utcnow
from portal.roulette.routing import HANDED_TO_ROUTER, route_soon

log = logging.getLogger(__name__)


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
    # Found by the same read: the lead of an earlier request with this
    # external_id, and the contact this lead belongs to (None: a new one).
    earlier_lead_id: int | None
    contact_id: int | None


@dataclass(frozen=True)
class Intake:
    """The outcome of one POST: the lead, and whether this call created it."""

    lead_id: int
    contact_id: int
    state: str
    created: bool


# ------------------------------------------------------------ validation


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

    department = _text(payload, "department") if "department" not in errors else None
    campaign = _text(payload, "campaign") if "campaign" not in errors else None
    external_id = model.external_id if model is not None else None
    found = db.session.execute(
        _LOOKUP,
        {
            "account": account.id,
            # Department keys are stored lower-case.
            "department": department.lower() if department else None,
            "campaign": campaign,
            "external_id": external_id,
            "phone": phone.e164 if phone else None,
            "email": email,
        },
    ).one()
    if department and found.department_id is None:
        errors["department"] = _("No department has this key.")
    if campaign and found.campaign_id is None:
        errors["campaign"] = _("No campaign has this key.")
    if errors or model is None:
        raise ValidationError(errors)
    # The returning customer (same phone or email, oldest first) gets the
    # new lead.
    matches = [i for i in (found.phone_match, found.email_match) if i is not None]
    return CleanLead(
        name=model.name,
        phone=phone,
        email=email,
        department_id=found.department_id,
        campaign_id=found.campaign_id,
        source=model.source,
        message=model.message,
        external_id=external_id,
        custom=model.custom,
        earlier_lead_id=found.earlier_lead_id,
        contact_id=min(matches, default=None),
    )


def _key_lookup(model: type[Campaign | Department], name: str) -> Label:
    return (
        select(model.id)
        .where(
            model.account_id == bindparam("account", type_=Integer),
            model.key == bindparam(name, type_=String),
        )
        .scalar_subquery()
        .label(f"{name}_id")
    )


def _first_contact(column: InstrumentedAttribute, name: str) -> ScalarSelect:
    return (
        select(func.min(Contact.id))
        .where(
            Contact.account_id == bindparam("account", type_=Integer),
            column == bindparam(name, type_=String),
        )
        .scalar_subquery()
        .label(f"{name}_match")
    )


# What a lead refers to, in one round trip: its department's and campaign's
# ids, the lead an earlier request with its external_id made, and the
# oldest contacts with its phone and with its email. A NULL parameter finds
# nothing, so one statement serves every payload.
_LOOKUP = select(
    _key_lookup(Department, "department"),
    _key_lookup(Campaign, "campaign"),
    select(Lead.id)
    .where(
        Lead.account_id == bindparam("account", type_=Integer),
        Lead.external_id == bindparam("external_id", type_=String),
    )
    .scalar_subquery()
    .label("earlier_lead_id"),
    _first_contact(Contact.phone_e164, "phone"),
    _first_contact(Contact.email_normalized, "email"),
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

    One read finds everything the lead refers to; then the contact (when
    new) and the lead are written together: on PostgreSQL in one statement
    outside a transaction (one round trip, atomic by itself), on SQLite in
    two plain INSERTs and the commit, which hold its one write lock briefly.
    """
    reads_outside_transaction(db.session)
    data = clean_lead(account, payload)
    if data.earlier_lead_id is not None:
        earlier = _by_external_id(account, data.external_id)
        if earlier is not None:
            db.session.rollback()
            return earlier
    try:
        lead_id, contact_id = _write(account, data, utcnow())
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
    state = _route(lead_id) if account.roulette_enabled else LeadState.QUEUED
    lead_created.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        account_id=account.id,
        lead_id=lead_id,
    )
    return Intake(lead_id=lead_id, contact_id=contact_id, state=state, created=True)


def _write(account: Account, data: CleanLead, now: datetime) -> tuple[int, int]:
    """Write the lead (and its new contact, when it has none yet); the ids
    of both. Does not commit."""
    lead_values = dict(
        account_id=account.id,
        origin=Origin.WEB,
        source=data.source,
        campaign_id=data.campaign_id,
        department_id=data.department_id,
        message=data.message,
        external_id=data.external_id,
        custom=data.custom,
        state=LeadState.QUEUED,
        round=1,
        created_at=now,
    )
    contact_values = (
        unowned_contact_values(
            account,
            name=data.name,
            phone=data.phone,
            email=data.email,
            department_id=data.department_id,
            campaign_id=data.campaign_id,
            origin=Origin.WEB,
            now=now,
        )
        if data.contact_id is None
        else None
    )
    if db.session.get_bind().dialect.name == "postgresql":
        params = prefixed(_LEAD, {"contact_id": data.contact_id, **lead_values})
        if contact_values is None:
            statement = _touching_contact(tuple(lead_values))
        else:
            statement = _with_new_contact(tuple(contact_values), tuple(lead_values))
            params.update(prefixed(_CONTACT, contact_values))
        row = db.session.execute(statement, params).one()
        return row.id, row.contact_id
    if contact_values is None:
        contact_id = data.contact_id
        db.session.execute(_TOUCH_CONTACT, {"touched": contact_id, "at": now})
    else:
        contact_id = db.session.execute(_INSERT_CONTACT, contact_values).scalar_one()
    lead_id = db.session.execute(
        _INSERT_LEAD, {"contact_id": contact_id, **lead_values}
    ).scalar_one()
    return lead_id, contact_id


# One statement for every lead, values as parameters: a `.values(...)` built
# per call costs more to construct and cache-key than to execute.
_INSERT_LEAD = insert(Lead.__table__).returning(Lead.__table__.c.id)
_INSERT_CONTACT = insert(Contact.__table__).returning(Contact.__table__.c.id)
_TOUCH_CONTACT = (
    update(Contact.__table__)
    .where(Contact.__table__.c.id == bindparam("touched"))
    .values(last_activity_at=bindparam("at"))
)
# The PostgreSQL statements' parameter names (see `column_param`).
_CONTACT, _LEAD = "contact_", "lead_"


def _bound(
    table: Table, names: tuple[str, ...], prefix: str
) -> dict[str, BindParameter]:
    return {name: column_param(table.c[name], prefix) for name in names}


@cache
def _with_new_contact(
    contact_columns: tuple[str, ...], lead_columns: tuple[str, ...]
) -> Insert:
    """PostgreSQL: INSERT the contact and the lead naming it in one
    statement (a data-modifying WITH)."""
    contacts, leads = Contact.__table__, Lead.__table__
    new_contact = (
        insert(contacts)
        .values(_bound(contacts, contact_columns, _CONTACT))
        .returning(contacts.c.id)
        .cte("new_contact")
    )
    lead_values = _bound(leads, lead_columns, _LEAD)
    return (
        insert(leads)
        .from_select(
            ["contact_id", *lead_values],
            select(new_contact.c.id, *lead_values.values()),
            include_defaults=False,  # the caller gives every column
        )
        .returning(leads.c.id, leads.c.contact_id)
    )


@cache
def _touching_contact(lead_columns: tuple[str, ...]) -> Insert:
    """PostgreSQL: INSERT the lead of a known contact and mark the contact
    active, in one statement."""
    contacts, leads = Contact.__table__, Lead.__table__
    lead_values = _bound(leads, ("contact_id", *lead_columns), _LEAD)
    touched = (
        update(contacts)
        .where(contacts.c.id == lead_values["contact_id"])
        .values(last_activity_at=lead_values["created_at"])
        .returning(contacts.c.id)
        .cte("touched")
    )
    return (
        insert(leads)
        .values(lead_values)
        .returning(leads.c.id, leads.c.contact_id)
        .add_cte(touched)
    )


def _route(lead_id: int) -> str:
    """Offer the committed lead; its state afterwards (queued when routing
    failed: the sweeper offers it later)."""
    try:
        placed = route_soon(lead_id=lead_id)
    except Exception:
        db.session.rollback()
        log.exception("routing lead %s failed; it waits for the sweep", lead_id)
        return LeadState.QUEUED
    if placed == HANDED_TO_ROUTER:
        return LeadState.QUEUED  # as committed; the router's offer follows
    if placed is not None:
        return LeadState.OFFERED
    # Routed here without an offer: a rival routing or a quick accept may
    # have moved it on already.
    return (
        db.session.scalar(select(Lead.state).where(Lead.id == lead_id))
        or LeadState.QUEUED
    )
