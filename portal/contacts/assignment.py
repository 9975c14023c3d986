"""Who may give a contact to whom: a claim, an assignment by hand, a bulk
assignment, and what a refused one may tell the caller.

Each goes through the one hand-over (portal.contacts.ownership), so of two
people claiming the same contact at once exactly one wins. A refusal names
the winner only to a caller who could have claimed the contact themself;
for everyone else a contact out of their scope does not exist (404).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select

from portal.contacts.ownership import OwnerChange, announce, hand_over
from portal.contacts.scope import (
    assignable_users_clause,
    claimable_clause,
    get_visible,
    may_own,
)
from portal.errors import Conflict, Forbidden, NotFound
from portal.extensions import db
from portal.ids import parse_id
from portal.models import AssignmentHow, AssignmentLog, Contact, User
from portal.models.base import utcnow
from portal.models.contact import campaign_member


def _target(user: User, to_user_id: int | str | None) -> User:
    """Whom `user` gives the contact to (themself when no id is given);
    raises Forbidden when they may not."""
    target_id = parse_id(to_user_id) if to_user_id not in (None, "") else user.id
    if target_id == user.id:
        if not (user.can("contacts.claim") or user.can("contacts.assign")):
            raise Forbidden(_("You may not take contacts."))
        return user
    if not user.can("contacts.assign"):
        raise Forbidden(_("You may assign contacts only to yourself."))
    target = db.session.scalar(
        select(User).where(User.id == target_id, assignable_users_clause(user))
    )
    if target is None or not may_own(target):
        raise Forbidden(_("You may not assign contacts to that user."))
    return target


def _check_claim(user: User, contact: Contact) -> None:
    """An agent (who may not assign) takes only an unowned contact the claim
    rule allows them; raises Conflict or Forbidden."""
    if user.can("contacts.assign"):
        return
    if contact.owner_id is not None:
        raise Conflict(_taken_message(contact))
    # The claim rule allows only campaigns the agent is in.
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


def _how(user: User, target: User, previous_owner_id: int | None) -> AssignmentHow:
    if target.id == user.id:
        return AssignmentHow.SELF
    if previous_owner_id is not None:
        return AssignmentHow.REASSIGNMENT
    return AssignmentHow.MANUAL


def assign(
    user: User,
    contact_id: int | str,
    to_user_id: int | str | None = None,
    how: AssignmentHow | None = None,
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
    target = _target(user, to_user_id)
    previous_owner_id = contact.owner_id
    if previous_owner_id == target.id:
        return contact
    _check_claim(user, contact)
    handed = hand_over(
        contact.account_id,
        [OwnerChange(contact.id, previous_owner_id, target.id)],
        by_user_id=user.id,
        how=how or _how(user, target, previous_owner_id),
        now=utcnow(),
    )
    if handed.lost:
        db.session.rollback()
        contact = db.session.get(Contact, contact.id)
        db.session.refresh(contact)
        raise Conflict(_taken_message(contact))
    db.session.commit()
    db.session.refresh(contact)
    announce(handed)
    return contact


# A claim that loses a race finds the contact already invisible (it has an
# owner now). Within this window after it left the queue we answer "taken by"
# instead of 404: the loser saw it unassigned moments ago.
JUST_TAKEN_SECONDS = 15 * 60


def _raise_if_just_taken(user: User, contact_id: int | str) -> None:
    """Raise Conflict naming the owner when `user` could have claimed the
    contact and just lost it to someone who took it for themself; return
    otherwise (the caller answers 404)."""
    if not (user.can("contacts.claim") or user.can("contacts.assign")):
        return
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
    if (utcnow() - contact.assigned_at).total_seconds() > JUST_TAKEN_SECONDS:
        return
    last = db.session.execute(
        select(
            AssignmentLog.from_user_id,
            AssignmentLog.to_user_id,
            AssignmentLog.by_user_id,
        )
        .where(AssignmentLog.contact_id == contact.id)
        .order_by(AssignmentLog.id.desc())
        .limit(1)
    ).first()
    if last is None or last.from_user_id is not None:
        return
    if last.by_user_id != last.to_user_id:
        # Someone gave it to its owner: it was never the caller's to take,
        # and whom it went to is none of their business.
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


def bulk_assign(
    user: User, contact_ids: list[int], to_user_id: int | str | None
) -> BulkResult:
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
