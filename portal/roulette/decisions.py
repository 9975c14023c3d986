"""The agent's answer to an offer, and the clock's: accept, decline, expire.

The promise: a decision has exactly one outcome. Every transition of an
offer is a conditional UPDATE on `state = 'pending'` (accept and decline
also on the deadline not having passed, expiry on its having passed), so
of an accept, a decline, an expiry and a withdrawal racing each other
exactly one applies, and the others are told why they came too late.
Accepting gives the agent the contact, unless a person handed it to
someone else since the offer was made. An agent who lets AUTO_PAUSE_AFTER
offers in a row run out is switched to unavailable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import aliased

from portal.contacts.ownership import OwnerChange, hand_over
from portal.errors import Conflict, NotFound, ValidationError
from portal.extensions import db
from portal.models import (
    AgentState,
    AssignmentHow,
    Contact,
    Lead,
    LeadState,
    Offer,
    OfferState,
    User,
)
from portal.models.base import utcnow
from portal.models.roulette import DECLINE_REASONS
from portal.roulette.endings import after_decision, lead_assigned_by_hand, requeue
from portal.roulette.push import Ended, ended_of
from portal.roulette.switch import set_available

# An agent who lets this many offers in a row run out is switched to
# unavailable: a lead should not wait a whole timeout on an empty chair.
AUTO_PAUSE_AFTER = 3

_REFUSALS = {
    OfferState.ACCEPTED: _l("You already accepted this lead."),
    OfferState.DECLINED: _l("You already declined this lead."),
    OfferState.EXPIRED: _l("Too late: the time to answer this offer ran out."),
    OfferState.CANCELLED: _l("This offer was withdrawn."),
}


# Built once, values as parameters: an answer reads only the columns it
# decides on (not the offer's candidates, a whole roster's worth of JSON),
# and building the statements per answer cost about as much as running them.
_OWN_OFFER = select(
    Offer.id, Offer.lead_id, Offer.agent_id, Offer.offered_at, Offer.expires_at
).where(
    Offer.id == bindparam("offer_id"),
    Offer.agent_id == bindparam("agent_id"),
    Offer.account_id == bindparam("account_id"),
)
_OWNER = aliased(User)
# With the owner's name, which the hand-over's timeline entry shows.
_ACCEPTED_CONTACT = (
    select(
        Lead.created_at.label("lead_created_at"),
        Contact.id,
        Contact.account_id,
        Contact.owner_id,
        Contact.assigned_at,
        Contact.name,
        _OWNER.name.label("owner_name"),
    )
    .join(Contact, Contact.id == Lead.contact_id)
    .outerjoin(_OWNER, _OWNER.id == Contact.owner_id)
    .where(Lead.id == bindparam("lead_id"))
)


def _own_offer(user: User, offer_id: int) -> Row[Any]:
    """The caller's offer (id, lead_id, agent_id, offered_at, expires_at),
    or NotFound (someone else's offers do not exist)."""
    try:
        wanted = int(offer_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    offer = db.session.execute(
        _OWN_OFFER,
        {"offer_id": wanted, "agent_id": user.id, "account_id": user.account_id},
    ).first()
    if offer is None:
        raise NotFound()
    return offer


def _refuse(offer_id: int) -> None:
    """Raise the Conflict that explains why a decision did not apply."""
    offer = db.session.get(Offer, offer_id, populate_existing=True)
    if offer.state == OfferState.PENDING:
        # Past its deadline and not yet expired by the sweep: expire it now,
        # so the lead moves on without waiting for the worker.
        expire_offer(offer.id)
        raise Conflict(str(_REFUSALS[OfferState.EXPIRED]))
    raise Conflict(str(_REFUSALS[OfferState(offer.state)]))


def _decide(
    offer_id: int, state: OfferState, now: datetime, reason: str | None = None
) -> bool:
    values: dict = {"state": state, "decided_at": now}
    if reason:
        values["decline_reason"] = reason
    return bool(
        db.session.execute(
            update(Offer)
            .where(
                Offer.id == offer_id,
                Offer.state == OfferState.PENDING,
                Offer.expires_at > now,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _seconds(since: datetime | None, until: datetime) -> int | None:
    return None if since is None else max(0, int((until - since).total_seconds()))


def accept(user: User, offer_id: int) -> Ended:
    """The agent takes the lead: they become the contact's owner.

    Raises NotFound (not their offer) or Conflict (decided, expired or
    withdrawn; the message says which).
    """
    offer = _own_offer(user, offer_id)
    # Read before the first write: a write transaction holds SQLite's one
    # write lock until it commits. A hand assignment committed after this
    # read is caught by the contact UPDATE's guard below.
    contact = db.session.execute(_ACCEPTED_CONTACT, {"lead_id": offer.lead_id}).one()
    now = utcnow()
    if not _decide(offer.id, OfferState.ACCEPTED, now):
        db.session.rollback()
        _refuse(offer.id)
    db.session.execute(
        update(Lead)
        .where(Lead.id == offer.lead_id)
        .values(
            state=LeadState.ASSIGNED,
            accepted_at=now,
            accepted_by_id=user.id,
            speed_to_lead_seconds=_seconds(contact.lead_created_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if _assigned_by_hand_since(contact, offer, user):
        _withdraw_for_hand_assignment(contact.id)
    # Guarded on the owner we read: a hand assignment committed since must
    # not be overwritten (see _assigned_by_hand_since). Not announced: the
    # agent took it themself, and the contact's other leads keep routing.
    handed = hand_over(
        contact.account_id,
        [OwnerChange(contact.id, contact.owner_id, user.id)],
        by_user_id=user.id,
        how=AssignmentHow.ROULETTE,
        now=now,
        notify_each=False,
        reset_attention=True,
        names=_names_read(contact, user),
    )
    if handed.lost:
        _withdraw_for_hand_assignment(contact.id)
    ended = _ended(offer, OfferState.ACCEPTED, now, contact, user)
    db.session.commit()
    after_decision(ended)
    return ended


def _names_read(contact: Row[Any], agent: User) -> dict[int, str]:
    """The names accept has read already: the agent's and the owner's."""
    names = {agent.id: agent.name}
    if contact.owner_id is not None:
        names[contact.owner_id] = contact.owner_name
    return names


def _ended(
    offer: Row[Any], state: OfferState, now: datetime, contact: Row[Any], agent: User
) -> Ended:
    """What the end of the decided offer shows (taken before the commit
    expires the rows it comes from)."""
    return Ended(
        id=offer.id,
        lead_id=offer.lead_id,
        agent_id=offer.agent_id,
        state=str(state),
        expires_at=offer.expires_at,
        decided_at=now,
        contact_id=contact.id,
        contact_name=contact.name,
        language=agent.language,
    )


def _assigned_by_hand_since(contact: Row[Any], offer: Row[Any], user: User) -> bool:
    """Whether someone gave the contact to another person after the offer was
    made. contacts.assign() commits the owner first and withdraws the offer
    right after (lead_assigned_by_hand); an accept in between must not take
    the contact from the person it was just handed to."""
    return (
        contact.owner_id not in (None, user.id)
        and contact.assigned_at is not None
        and contact.assigned_at > offer.offered_at
    )


def _withdraw_for_hand_assignment(contact_id: int) -> None:
    """Undo the accept, do the withdrawal the hand assignment is about to
    do (it is idempotent), and tell the agent. Raises Conflict."""
    db.session.rollback()
    owner_id = db.session.scalar(
        select(Contact.owner_id).where(Contact.id == contact_id)
    )
    if owner_id is not None:
        lead_assigned_by_hand(contact_id, owner_id)
    raise Conflict(str(_REFUSALS[OfferState.CANCELLED]))


def decline(user: User, offer_id: int, reason: str | None = None) -> Ended:
    """The agent passes, saying why if they like (DECLINE_REASONS); the lead
    goes to the next candidate at once.

    Raises ValidationError naming `reason` for one not in the list, NotFound
    or Conflict as `accept` does."""
    if reason and reason not in DECLINE_REASONS:
        raise ValidationError({"reason": _("Pick a reason from the list.")})
    offer = _own_offer(user, offer_id)
    now = utcnow()
    if not _decide(offer.id, OfferState.DECLINED, now, reason or None):
        db.session.rollback()
        _refuse(offer.id)
    requeue(offer.lead_id)
    ended = ended_of(offer.id)
    db.session.commit()
    after_decision(ended)
    return ended


def expire_offer(offer_id: int, now: datetime | None = None) -> bool:
    """End an overdue offer as a decline; True when this call ended it.

    Safe to run twice and to race an accept: only one conditional UPDATE
    applies.
    """
    now = now or utcnow()
    ended = db.session.execute(
        update(Offer)
        .where(
            Offer.id == offer_id,
            Offer.state == OfferState.PENDING,
            Offer.expires_at <= now,
        )
        .values(state=OfferState.EXPIRED, decided_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not ended:
        db.session.rollback()
        return False
    offer = ended_of(offer_id)
    requeue(offer.lead_id)
    db.session.commit()
    paused = _pause_if_absent(offer.agent_id)
    after_decision(offer, agent_free=not paused)
    return True


def _pause_if_absent(agent_id: int) -> bool:
    """Switch off an agent whose last offers all ran out unanswered."""
    query = (
        select(Offer.state)
        .where(Offer.agent_id == agent_id)
        .order_by(Offer.id.desc())
        .limit(AUTO_PAUSE_AFTER)
    )
    switched_on = db.session.scalar(
        select(AgentState.available_changed_at).where(AgentState.user_id == agent_id)
    )
    if switched_on is not None:
        # Switching on again starts a new count: misses from before the last
        # pause must not switch the agent off after a single new one.
        query = query.where(Offer.offered_at >= switched_on)
    last = list(db.session.scalars(query))
    if len(last) < AUTO_PAUSE_AFTER or any(s != OfferState.EXPIRED for s in last):
        return False
    user = db.session.get(User, agent_id)
    if user is None:
        return False
    set_available(user, False, automatic=True)
    return True
