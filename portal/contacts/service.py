"""Contacts: creation, matching, the timeline, status, and assignment.

Assignment is a conditional UPDATE (never read-then-write), so of two people
claiming the same contact at once exactly one wins, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import selectinload

from portal.contacts import normalize
from portal.contacts.scope import (
    assignable_users_clause,
    claimable_clause,
    visible_clause,
)
from portal.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    ValidationError,
)
from portal.extensions import db
from portal.ids import parse_id
from portal.models import (
    Account,
    AssignmentHow,
    AssignmentLog,
    Campaign,
    Contact,
    ContactStatus,
    Department,
    HistoryEntry,
    Lead,
    Origin,
    User,
)
from portal.models.base import utcnow
from portal.models.contact import campaign_member
from portal.queue import enqueue

MAX_NAME = 200
MAX_TEXT = 5000
MAX_REASON = 500
MAX_TAGS = 20
OPEN_STATUSES = (ContactStatus.NEW, ContactStatus.ASSIGNED, ContactStatus.IN_PROGRESS)


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


def _clean_email(raw: str) -> str | None:
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


def _in_account(model, account: Account, row_id: int | None, field_name: str):
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
        email = _clean_email(data.email)
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


def _matching(account: Account, phone_e164: str | None, email: str | None):
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


def _may_own(user: User) -> bool:
    return user.is_active and (
        user.can("contacts.view_own") or user.can("contacts.view_all")
    )


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
    if owner is None or not _may_own(owner):
        raise refused
    return owner


def create_contact(account: Account, creator: User, data: ContactInput) -> Contact:
    """Create a contact; the creator owns it unless they pick someone in scope.

    Raises ValidationError (bad fields) or Forbidden (an owner out of scope).
    """
    cleaned = clean_contact(account, data)
    owner = _chosen_owner(creator, data.owner_id)
    if owner is None and _may_own(creator):
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


def get_visible(user: User, contact_id: int) -> Contact:
    """The contact if `user` may see it; raises NotFound otherwise."""
    try:
        contact_id = int(contact_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    contact = db.session.scalar(
        select(Contact).where(Contact.id == contact_id, visible_clause(user))
    )
    if contact is None:
        raise NotFound()
    return contact


def log_assignment(
    contact: Contact,
    from_user: User | None,
    to_user: User | None,
    by_user: User | None,
    how: str,
) -> AssignmentLog:
    """Record an ownership change in the log and on the timeline (flushed)."""
    log = AssignmentLog(
        account_id=contact.account_id,
        contact_id=contact.id,
        from_user_id=from_user.id if from_user else None,
        to_user_id=to_user.id if to_user else None,
        by_user_id=by_user.id if by_user else None,
        how=how,
    )
    db.session.add(log)
    db.session.add(
        HistoryEntry(
            account_id=contact.account_id,
            contact_id=contact.id,
            kind="assignment",
            author_id=by_user.id if by_user else None,
            data={
                "from": from_user.name if from_user else None,
                "to": to_user.name if to_user else None,
                "how": str(how),
            },
        )
    )
    db.session.flush()
    return log


def _notify(log_id: int, to_user_id: int | None, by_user_id: int | None) -> None:
    """Queue the new owner's notification (call after the commit)."""
    if to_user_id and to_user_id != by_user_id:
        enqueue("jobs.notifications.notify_assignment", log_id)


def assign(
    user: User,
    contact_id: int,
    to_user_id: int | str | None = None,
    how: str | None = None,
) -> Contact:
    """Give the contact to `to_user_id` (None: to `user` themself).

    Exactly one of concurrent claims wins. Raises NotFound (not visible),
    Forbidden (may not assign to that user or take this contact) and Conflict
    (someone else owns it now: the message names them).
    """
    try:
        contact = get_visible(user, contact_id)
    except NotFound:
        _raise_if_just_taken(user, contact_id)
        raise
    target_id = parse_id(to_user_id) if to_user_id not in (None, "") else user.id
    to_self = target_id == user.id
    if to_self:
        if not (user.can("contacts.claim") or user.can("contacts.assign")):
            raise Forbidden(_("You may not take contacts."))
        target = user
    else:
        if not user.can("contacts.assign"):
            raise Forbidden(_("You may assign contacts only to yourself."))
        target = db.session.scalar(
            select(User).where(User.id == target_id, assignable_users_clause(user))
        )
        if target is None or not _may_own(target):
            raise Forbidden(_("You may not assign contacts to that user."))
    previous_owner_id = contact.owner_id
    if previous_owner_id == target.id:
        return contact
    if previous_owner_id is not None and not user.can("contacts.assign"):
        raise Conflict(_taken_message(contact))
    if previous_owner_id is None and not user.can("contacts.assign"):
        # An agent may claim only what the claim rule allows (campaigns).
        allowed = db.session.scalar(
            select(Contact.id).where(Contact.id == contact.id, claimable_clause(user))
        )
        if allowed is None:
            # The claim rule also asks for no owner: a rival who won since we
            # read the contact makes this a lost race, not a refusal.
            db.session.refresh(contact)
            if contact.owner_id is not None:
                raise Conflict(_taken_message(contact))
            raise Forbidden(_("This contact belongs to a campaign you are not in."))

    now = utcnow()
    guard = (
        Contact.owner_id.is_(None)
        if previous_owner_id is None
        else Contact.owner_id == previous_owner_id
    )
    values: dict = {"owner_id": target.id, "assigned_at": now, "last_activity_at": now}
    if contact.status == ContactStatus.NEW:
        values["status"] = ContactStatus.ASSIGNED
    won = db.session.execute(
        update(Contact)
        .where(Contact.id == contact.id, guard)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        db.session.rollback()
        contact = db.session.get(Contact, contact.id)
        db.session.refresh(contact)
        raise Conflict(_taken_message(contact))
    previous = db.session.get(User, previous_owner_id) if previous_owner_id else None
    if how is None:
        if to_self:
            how = AssignmentHow.SELF
        elif previous is not None:
            how = AssignmentHow.REASSIGNMENT
        else:
            how = AssignmentHow.MANUAL
    log = log_assignment(contact, previous, target, user, how)
    # Read before the commit expires them: a claim is a hot path.
    notice = (log.id, log.to_user_id, log.by_user_id)
    db.session.commit()
    db.session.refresh(contact)
    _notify(*notice)
    # A waiting or offered lead of this contact is now someone's, also when
    # the contact had an owner (an offline owner's lead goes round the
    # roulette, and a manager may hand the contact to someone else).
    from portal.roulette.service import lead_assigned_by_hand

    lead_assigned_by_hand(contact.id, target.id)
    return contact


# A claim that loses a race finds the contact already invisible (it has an
# owner now). Within this window after it left the queue we answer "taken by"
# instead of 404: the loser saw it unassigned moments ago.
JUST_TAKEN_SECONDS = 15 * 60


def _raise_if_just_taken(user: User, contact_id: int) -> None:
    try:
        contact = db.session.get(Contact, int(contact_id))
    except (TypeError, ValueError):
        return
    if contact is None or contact.account_id != user.account_id:
        return
    if contact.owner_id is None or contact.assigned_at is None:
        return
    if contact.assigned_at == contact.created_at:
        return  # owned since creation: it never waited in the queue
    assigned_at = contact.assigned_at
    now = utcnow()
    if assigned_at.tzinfo is None:
        assigned_at = assigned_at.replace(tzinfo=now.tzinfo)
    if (now - assigned_at).total_seconds() > JUST_TAKEN_SECONDS:
        return
    last = db.session.execute(
        select(AssignmentLog.from_user_id)
        .where(AssignmentLog.contact_id == contact.id)
        .order_by(AssignmentLog.id.desc())
        .limit(1)
    ).first()
    if last is None or last.from_user_id is not None:
        return
    if contact.campaign_id is not None and not user.can("contacts.assign"):
        in_campaign = db.session.scalar(
            select(campaign_member.c.user_id).where(
                campaign_member.c.campaign_id == contact.campaign_id,
                campaign_member.c.user_id == user.id,
            )
        )
        if in_campaign is None:
            return
    if user.can("contacts.claim") or user.can("contacts.assign"):
        raise Conflict(_taken_message(contact))


def _taken_message(contact: Contact) -> str:
    owner = db.session.get(User, contact.owner_id) if contact.owner_id else None
    if owner is None:
        return _("This contact changed meanwhile. Reload and try again.")
    return _("Already taken by %(name)s.", name=owner.name)


@dataclass
class BulkResult:
    assigned: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def bulk_assign(user: User, contact_ids: list[int], to_user_id: int) -> BulkResult:
    """Assign each contact in turn; one refusal does not stop the rest."""
    result = BulkResult()
    for contact_id in dict.fromkeys(contact_ids):
        try:
            assign(user, contact_id, to_user_id, how=AssignmentHow.BULK)
        except NotFound:
            result.failed[contact_id] = _("Not found.")
        except (Forbidden, Conflict) as exc:
            result.failed[contact_id] = str(exc)
        else:
            result.assigned.append(contact_id)
    return result


def mark_attended(contact: Contact, user: User, at: datetime | None = None) -> None:
    """The owner's first history entry or edit: first response is measured."""
    if contact.owner_id != user.id:
        return
    at = at or utcnow()
    if contact.attended_at is None:
        contact.attended_at = at
        started = contact.assigned_at or contact.created_at
        if started is not None:
            if started.tzinfo is None:
                started = started.replace(tzinfo=at.tzinfo)
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
        created = lead.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=at.tzinfo)
        lead.first_response_seconds = max(0, int((at - created).total_seconds()))


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
    db.session.add(
        HistoryEntry(
            account_id=contact.account_id,
            contact_id=contact.id,
            kind="status",
            author_id=user.id,
            body=reason or None,
            data={"from": str(old), "to": str(new_status)},
        )
    )
    db.session.commit()
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


# --- The profile: timeline, edit rights, form choices; creation's match check.

TIMELINE_PAGE = 20


def may_own(user: User) -> bool:
    """Whether `user` may be a contact's owner (an active user who sees
    contacts)."""
    return _may_own(user)


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
        return _clean_email(raw)
    except ValidationError:
        return None


def _matches_for(user: User, phone_e164: str | None, email: str | None) -> list[Match]:
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
    return _matches_for(user, _phone_e164_or_none(phone), _email_or_none(email))


class PossibleDuplicate(ServiceError):
    """The new contact's phone or email is already known; `matches` says
    what the creator may know about those contacts."""

    def __init__(self, matches: list[Match]):
        super().__init__(_("This phone or email is already known."))
        self.matches = matches


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
        matches = _matches_for(
            creator, cleaned.phone.e164 if cleaned.phone else None, cleaned.email
        )
        if matches:
            raise PossibleDuplicate(matches)
    return create_contact(account, creator, data)


def clean_email(raw: str) -> str | None:
    """The email as contacts store and match it (trimmed, lower-cased,
    validated), or None when blank; raises ValidationError naming "email"."""
    return _clean_email(raw)


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
) -> dict:
    """Every column of a new contact nobody created or owns yet, from
    already cleaned values (for callers that write it in a statement of
    their own)."""
    return _contact_values(
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


def _contact_row(
    account: Account,
    name: str,
    phone: normalize.Phone | None,
    email: str | None,
    *,
    now: datetime,
    origin: str,
    **columns,
) -> Contact:
    """Add (and flush) a contact from cleaned values, with the search forms
    of its name, phone and email filled in."""
    contact = Contact(
        **_contact_values(
            account, name, phone, email, now=now, origin=origin, **columns
        )
    )
    db.session.add(contact)
    db.session.flush()
    return contact


def _contact_values(
    account: Account,
    name: str,
    phone: normalize.Phone | None,
    email: str | None,
    *,
    now: datetime,
    origin: str,
    **columns,
) -> dict:
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
