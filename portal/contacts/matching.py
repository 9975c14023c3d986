"""Finding the contacts that already have a phone or email, and telling a
user only as much about them as they may know.

Matching is on the normalised forms (E.164 phone, lower-cased email) within
one account; a match the user may not see is told as whom to ask, never by
its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, or_, select

from portal.contacts import normalize
from portal.contacts.cleaning import clean_email
from portal.contacts.scope import visible_clause
from portal.errors import ServiceError, ValidationError
from portal.extensions import db
from portal.models import Account, Contact, User


def _matching(
    account: Account, phone_e164: str | None, email: str | None
) -> ColumnElement[bool] | None:
    """The condition "this account's contact with this phone or email"
    (normalised), or None when there is neither."""
    conditions = []
    if phone_e164:
        conditions.append(Contact.phone_e164 == phone_e164)
    if email:
        conditions.append(Contact.email_normalized == email)
    if not conditions:
        return None
    return and_(Contact.account_id == account.id, or_(*conditions))


def find_matches(
    account: Account, phone_e164: str | None, email: str | None, limit: int = 5
) -> list[Contact]:
    """Existing contacts with this phone or email (normalised)."""
    matching = _matching(account, phone_e164, email)
    if matching is None:
        return []
    return list(
        db.session.scalars(
            select(Contact).where(matching).order_by(Contact.id).limit(limit)
        )
    )


@dataclass(frozen=True)
class Match:
    """An existing contact with the same phone or email, as far as the viewer
    may know it: id and name only when they may see it, else only whom to ask
    (its owner's name, or None when it waits for an owner)."""

    visible: bool
    contact_id: int | None
    name: str | None
    owner_name: str | None


def _phone_e164_or_none(raw: str) -> str | None:
    if not (raw or "").strip():
        return None
    try:
        return normalize.parse_phone(raw).e164
    except ValidationError:
        return None


def _email_or_none(raw: str) -> str | None:
    try:
        return clean_email(raw)
    except ValidationError:
        return None


def matches_for(user: User, phone_e164: str | None, email: str | None) -> list[Match]:
    """Existing contacts with this phone or email, told as far as `user`
    may know them."""
    account = db.session.get(Account, user.account_id)
    found = find_matches(account, phone_e164, email)
    if not found:
        return []
    visible_ids = set(
        db.session.scalars(
            select(Contact.id).where(
                Contact.id.in_([c.id for c in found]), visible_clause(user)
            )
        )
    )
    matches = []
    for contact in found:
        owner_name = contact.owner.name if contact.owner else None
        if contact.id in visible_ids:
            matches.append(Match(True, contact.id, contact.name, owner_name))
        else:
            matches.append(Match(False, None, None, owner_name))
    return matches


def match_check(user: User, phone: str, email: str) -> list[Match]:
    """Existing contacts with this phone or email (normalised), told as far
    as `user` may know them. Input that does not parse matches nothing: the
    form reports it on submit."""
    return matches_for(user, _phone_e164_or_none(phone), _email_or_none(email))


class PossibleDuplicate(ServiceError):
    """The new contact's phone or email is already known; `matches` says
    what the creator may know about those contacts."""

    def __init__(self, matches: list[Match]) -> None:
        super().__init__(_("This phone or email is already known."))
        self.matches = matches
