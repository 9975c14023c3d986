"""Page cursors of the contact list: where the next page starts.

A cursor is urlsafe base64 of compact JSON [sort, value, id] followed by a
short HMAC, so a hand-edited one is refused (BadCursor, answered 400)
instead of silently paging from an arbitrary place. It never grants
anything: every page is still scoped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from flask_babel import gettext as _

from portal.errors import ServiceError


class BadCursor(ServiceError):
    """The `cursor` is not one this list handed out (answers 400)."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the row with (value, id)."""

    sort: str
    value: int | str
    id: int


def _cursor_mac(payload: bytes) -> bytes:
    key = str(current_app.secret_key).encode()
    return hmac.new(key, b"contacts.cursor:" + payload, hashlib.sha256).digest()[:12]


def encode_cursor(cursor: Cursor) -> str:
    payload = json.dumps(
        [cursor.sort, cursor.value, cursor.id], separators=(",", ":")
    ).encode()
    token = base64.urlsafe_b64encode(payload + _cursor_mac(payload))
    return token.decode().rstrip("=")


def decode_cursor(token: str, sort: str) -> Cursor:
    """The cursor in `token`; raises BadCursor if it was altered, truncated or
    made for another sort."""
    invalid = BadCursor(
        _("This page link is not valid (it may have been altered). Start again.")
    )
    if len(token) > 200:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    payload, mac = raw[:-12], raw[-12:]
    if len(raw) <= 12 or not hmac.compare_digest(mac, _cursor_mac(payload)):
        raise invalid
    try:
        cursor_sort, value, row_id = json.loads(payload)
    except (ValueError, TypeError):
        raise invalid from None
    if cursor_sort != sort:
        raise BadCursor(_("This page link belongs to another sort order. Start again."))
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise invalid
    if sort == "last_activity":
        if not isinstance(value, str):
            raise invalid
        try:
            as_utc(datetime.fromisoformat(value))
        except ValueError:
            raise invalid from None
    elif value != row_id:
        raise invalid
    return Cursor(sort=sort, value=value, id=row_id)


def as_utc(moment: datetime) -> datetime:
    """A moment parsed from a cursor's ISO text, in UTC. Text without an
    offset parses naive; it is taken as UTC, the zone of every stored time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
