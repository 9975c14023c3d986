"""Contacts: creation (after the match check), the timeline, status and
edits, and who may change a contact.

Creation cleans every field at once (portal.contacts.cleaning), asks the
match check (portal.contacts.matching) unless the creator confirmed, and
records the owner a contact is created with through the hand-over's log
(portal.contacts.ownership); owner changes of existing contacts are
portal.contacts.assignment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.contacts import normalize
from portal.contacts.cleaning import (
    MAX_REASON,
    MAX_TEXT,
    ContactInput,
    clean_contact,
    contact_values,
)
from portal.contacts.matching import PossibleDuplicate, matches_for
from portal.contacts.ownership import log_assignment, status_changed
from portal.contacts.scope import assignable_users_clause, get_visible, may_own
from portal.errors import Forbidden, ValidationError
from portal.extensions import db
from portal.models import (
    Account,
    AssignmentHow,
    Campaign,
    Contact,
    ContactStatus,
    Department,
    HistoryEntry,
    Lead,
    User,
)
from portal.models.base import utcnow

OPEN_STATUSES = (ContactStatus.NEW, ContactStatus.ASSIGNED, ContactStatus.IN_PROGRESS)


def _chosen_owner(creator: User, owner_id: int | str | None) -> User | None:
    """The owner the creator picked (None when they picked none).

    Raises ValidationError for an id that is not a number, not someone the
    creator may assign to, or someone who may not own contacts (assign()
    refuses those too).
    """
    if owner_id in (None, ""):
        return None
    refused = ValidationError({"owner": _("Pick someone you may assign to.")})
    try:
        owner_id = int(owner_id)
    except (TypeError, ValueError):
        raise refused from None
    owner = db.session.scalar(
        select(User).where(User.id == owner_id, assignable_users_clause(creator))
    )
    if owner is None or not may_own(owner):
        raise refused
    return owner


def create_contact(account: Account, creator: User, data: ContactInput) -> Contact:
    """Create a contact; the creator owns it unless they pick someone in scope.

    Raises ValidationError (bad fields) or Forbidden (an owner out of scope).
    """
    cleaned = clean_contact(account, data)
    owner = _chosen_owner(creator, data.owner_id)
    if owner is None and may_own(creator):
        owner = creator
    now = utcnow()
    contact = _contact_row(
        account,
        cleaned.name,
        cleaned.phone,
        cleaned.email,
        now=now,
        origin=data.origin,
        department=cleaned.department,
        campaign=cleaned.campaign,
        tags=cleaned.tags,
        custom=cleaned.custom,
        created_by_id=creator.id,
        owner_id=owner.id if owner else None,
        status=ContactStatus.ASSIGNED if owner else ContactStatus.NEW,
        assigned_at=now if owner else None,
    )
    if owner:
        how = AssignmentHow.SELF if owner.id == creator.id else AssignmentHow.MANUAL
        log_assignment(contact, None, owner, creator, how)
    db.session.commit()
    return contact


def mark_attended(contact: Contact, user: User, at: datetime | None = None) -> None:
    """The owner's first history entry or edit: first response is measured."""
    if contact.owner_id != user.id:
        return
    at = at or utcnow()
    if contact.attended_at is None:
        contact.attended_at = at
        started = contact.assigned_at or contact.created_at
        if started is not None:
            contact.first_response_seconds = max(0, int((at - started).total_seconds()))
        if contact.status in (ContactStatus.NEW, ContactStatus.ASSIGNED):
            contact.status = ContactStatus.IN_PROGRESS
    # The roulette's leads this owner accepted are attended now too: their
    # first response is measured from intake (the dashboard's figure). Even
    # on a contact attended long ago: the owner may have accepted a new
    # lead of a returning customer, which waits for its own first response.
    for lead in db.session.scalars(
        select(Lead).where(
            Lead.contact_id == contact.id,
            Lead.accepted_by_id == user.id,
            Lead.attended_at.is_(None),
        )
    ):
        lead.attended_at = at
        lead.first_response_seconds = max(
            0, int((at - lead.created_at).total_seconds())
        )


def add_history(user: User, contact_id: int, kind: str, body: str) -> HistoryEntry:
    """A note or call on the timeline; raises ValidationError / NotFound."""
    contact = get_visible(user, contact_id)
    if kind not in ("note", "call"):
        raise ValidationError({"kind": _("Pick from the list.")})
    text = (body or "").strip()
    if not text:
        raise ValidationError({"body": _("Required.")})
    if len(text) > MAX_TEXT:
        raise ValidationError({"body": _("Use at most %(n)d characters.", n=MAX_TEXT)})
    entry = HistoryEntry(
        account_id=contact.account_id,
        contact_id=contact.id,
        kind=kind,
        author_id=user.id,
        body=text,
    )
    db.session.add(entry)
    now = utcnow()
    contact.last_activity_at = now
    mark_attended(contact, user, now)
    db.session.commit()
    return entry


def set_status(user: User, contact_id: int, status: str, reason: str = "") -> Contact:
    """Move the contact to `status`; won and lost need a reason."""
    contact = get_visible(user, contact_id)
    if contact.owner_id != user.id and not user.can("contacts.assign"):
        raise Forbidden(_("Only the owner or a manager may change the status."))
    try:
        new_status = ContactStatus(status)
    except ValueError:
        raise ValidationError({"status": _("Pick from the list.")}) from None
    reason = " ".join((reason or "").split())
    if new_status in (ContactStatus.WON, ContactStatus.LOST) and not reason:
        raise ValidationError({"reason": _("Say why.")})
    if len(reason) > MAX_REASON:
        raise ValidationError(
            {"reason": _("Use at most %(n)d characters.", n=MAX_REASON)}
        )
    old = contact.status
    if old == new_status:
        return contact
    now = utcnow()
    mark_attended(contact, user, now)
    contact.status = new_status
    contact.status_reason = reason or None
    contact.last_activity_at = now
    entry = HistoryEntry(
        account_id=contact.account_id,
        contact_id=contact.id,
        kind="status",
        author_id=user.id,
        body=reason or None,
        data={"from": str(old), "to": str(new_status)},
    )
    db.session.add(entry)
    db.session.commit()
    status_changed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        account_id=contact.account_id,
        entry_id=entry.id,
    )
    return contact


def update_contact(user: User, contact_id: int, data: ContactInput) -> Contact:
    """Edit the contact's details (not its owner); the owner's edit counts as
    attending it."""
    contact = get_visible(user, contact_id)
    if contact.owner_id != user.id and not user.can("contacts.assign"):
        raise Forbidden(_("Only the owner or a manager may edit this contact."))
    account = db.session.get(Account, contact.account_id)
    cleaned = clean_contact(account, data)
    contact.name = cleaned.name
    contact.name_search = normalize.fold(cleaned.name)
    contact.phone = cleaned.phone.display if cleaned.phone else None
    contact.phone_e164 = cleaned.phone.e164 if cleaned.phone else None
    contact.phone_national = cleaned.phone.national if cleaned.phone else None
    contact.email = contact.email_normalized = cleaned.email
    contact.department = cleaned.department
    contact.campaign = cleaned.campaign
    contact.tags = cleaned.tags
    contact.custom = cleaned.custom
    now = utcnow()
    contact.last_activity_at = now
    mark_attended(contact, user, now)
    db.session.add(
        HistoryEntry(
            account_id=contact.account_id,
            contact_id=contact.id,
            kind="edit",
            author_id=user.id,
        )
    )
    db.session.commit()
    return contact


TIMELINE_PAGE = 20


def may_change(user: User, contact: Contact) -> bool:
    """Whether `user` may edit the contact or change its status: its owner or
    someone who assigns contacts (the rule update_contact and set_status
    enforce)."""
    return contact.owner_id == user.id or user.can("contacts.assign")


@dataclass
class TimelinePage:
    entries: list[HistoryEntry]
    # Pass as `before` to get the next, older page; None on the last page.
    next_before: int | None


def timeline(
    user: User,
    contact_id: int,
    before: int | None = None,
    limit: int = TIMELINE_PAGE,
) -> TimelinePage:
    """A page of the contact's timeline, newest first, older than `before`
    (an entry id). Raises NotFound when `user` may not see the contact."""
    contact = get_visible(user, contact_id)
    query = (
        select(HistoryEntry)
        .where(HistoryEntry.contact_id == contact.id)
        .options(selectinload(HistoryEntry.author))
        .order_by(HistoryEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(HistoryEntry.id < before)
    entries = list(db.session.scalars(query))
    more = len(entries) > limit
    entries = entries[:limit]
    return TimelinePage(entries, entries[-1].id if more and entries else None)


@dataclass(frozen=True)
class ContactChoices:
    departments: list[Department]
    campaigns: list[Campaign]


def form_choices(account: Account) -> ContactChoices:
    """The departments and campaigns a contact form offers."""
    return ContactChoices(
        departments=list(
            db.session.scalars(
                select(Department)
                .where(Department.account_id == account.id)
                .order_by(Department.name)
            )
        ),
        campaigns=list(
            db.session.scalars(
                select(Campaign)
                .where(Campaign.account_id == account.id)
                .order_by(Campaign.name)
            )
        ),
    )


def create_checked(
    account: Account, creator: User, data: ContactInput, *, confirmed: bool
) -> Contact:
    """Create a contact after the match check: unless `confirmed`, a known
    phone or email raises PossibleDuplicate and nothing is written.

    Raises ValidationError naming every bad field (owner included) first.
    """
    errors: dict[str, str] = {}
    cleaned = None
    try:
        cleaned = clean_contact(account, data)
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        _chosen_owner(creator, data.owner_id)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors or cleaned is None:
        raise ValidationError(errors)
    if not confirmed:
        matches = matches_for(
            creator, cleaned.phone.e164 if cleaned.phone else None, cleaned.email
        )
        if matches:
            raise PossibleDuplicate(matches)
    return create_contact(account, creator, data)


def _contact_row(
    account: Account,
    name: str,
    phone: normalize.Phone | None,
    email: str | None,
    *,
    now: datetime,
    origin: str,
    **columns: Any,
) -> Contact:
    """Add (and flush) a contact from cleaned values, with the search forms
    of its name, phone and email filled in."""
    contact = Contact(
        **contact_values(account, name, phone, email, now=now, origin=origin, **columns)
    )
    db.session.add(contact)
    db.session.flush()
    return contact
