"""Contacts for integrations: every contact of the key's account, in id
order, one keyset page at a time (`GET /api/v1/contacts`).

The cursor is the contact list's signed cursor (`portal.contacts.cursor`)
with its own sort name, so a cursor of the web list is refused here and a
hand-edited one answers 400.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext as _
from sqlalchemy import select

from portal.contacts.cursor import Cursor, decode_cursor, encode_cursor
from portal.errors import ValidationError
from portal.extensions import db
from portal.ids import parse_id
from portal.leads.reading import iso
from portal.models import Account, Contact, User

CURSOR_SORT = "api_id"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def _owner_filter(account: Account, raw: str) -> list:
    if raw == "":
        return []
    if raw == "unassigned":
        return [Contact.owner_id.is_(None)]
    refused = ValidationError(
        {"owner": _("Give a user id of this account, or unassigned.")}
    )
    owner_id = parse_id(raw)
    if owner_id is None:
        raise refused
    exists = db.session.scalar(
        select(User.id).where(User.id == owner_id, User.account_id == account.id)
    )
    if exists is None:
        raise refused
    return [Contact.owner_id == owner_id]


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # isascii(): isdigit() alone passes "²", which int() refuses.
    if raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    raise ValidationError(
        {"limit": _("Give a whole number from 1 to %(n)d.", n=MAX_LIMIT)}
    )


def contact_page(account: Account, args: Mapping[str, str]) -> dict:
    """One page: {"items": [...], "next_cursor": str | None}.

    Raises ValidationError naming `owner` and/or `limit`, then BadCursor for
    a cursor this API did not hand out.
    """
    errors: dict[str, str] = {}
    clauses: list = []
    limit = DEFAULT_LIMIT
    try:
        clauses = _owner_filter(account, (args.get("owner") or "").strip())
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        limit = _limit(args.get("limit"))
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError(errors)
    raw_cursor = (args.get("cursor") or "").strip()
    if raw_cursor:
        after = decode_cursor(raw_cursor, CURSOR_SORT)
        clauses.append(Contact.id > after.id)
    rows = db.session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.phone,
            Contact.phone_e164,
            Contact.email,
            Contact.owner_id,
            Contact.status,
            Contact.origin,
            Contact.created_at,
        )
        .where(Contact.account_id == account.id, *clauses)
        .order_by(Contact.id)
        .limit(limit + 1)
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].id
        next_cursor = encode_cursor(Cursor(sort=CURSOR_SORT, value=last, id=last))
    return {
        "items": [
            {
                "id": row.id,
                "name": row.name,
                "phone": row.phone,
                "phone_e164": row.phone_e164,
                "email": row.email,
                "owner_id": row.owner_id,
                "status": row.status,
                "origin": row.origin,
                "created_at": iso(row.created_at),
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }
