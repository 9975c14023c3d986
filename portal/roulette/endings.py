"""How an offer ends without its agent's answer, and what follows any end.

The promise: an offer is withdrawn only by a conditional UPDATE on its
still being pending, so a withdrawal and an accept cannot both apply; a
lead whose offer ended without an owner is committed back to "queued"
before anyone else is asked; and after the commit (`after_decision`) the
agent's tabs learn of the end, and the lead and the freed agent are routed
on.

Two withdrawals live here: an agent's pending offer when they stop taking
leads (`cancel_pending`), and a contact's offers and queued leads when a
person gives the contact an owner (`lead_assigned_by_hand`).
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, or_, select, update

from portal.extensions import db
from portal.models import AssignmentHow, Lead, LeadState, Offer, OfferState
from portal.models.base import utcnow
from portal.roulette import push, signals
from portal.roulette.push import Ended, ended_of
from portal.roulette.routing import MAX_ATTEMPTS, route_soon

log = logging.getLogger(__name__)


def requeue(lead_id: int) -> None:
    """The lead's offer ended without an owner: it waits again (uncommitted)."""
    db.session.execute(
        update(Lead)
        .where(Lead.id == lead_id, Lead.state == LeadState.OFFERED)
        .values(state=LeadState.QUEUED)
        .execution_options(synchronize_session=False)
    )


def after_decision(offer: Ended, agent_free: bool = True) -> None:
    """After the commit: tell the agent's tabs, route the lead on if it came
    back to the queue, and give the agent, now free, a waiting lead."""
    try:
        push.offer_ended(offer)
    except Exception:
        log.exception("pushing the end of offer %s failed", offer.id)
    signals.send(
        signals.offer_changed,
        agent_id=offer.agent_id,
        offer_id=offer.id,
        state=offer.state,
    )
    route_soon(
        lead_id=offer.lead_id if offer.state != OfferState.ACCEPTED else None,
        agent_id=offer.agent_id if agent_free else None,
    )


def cancel_pending(agent_id: int) -> list[int]:
    """Withdraw the agent's pending offer (switch off, suspension) and pass
    its lead on. Commits. Returns the withdrawn offer ids."""
    now = utcnow()
    offers = list(
        db.session.scalars(
            select(Offer).where(
                Offer.agent_id == agent_id, Offer.state == OfferState.PENDING
            )
        )
    )
    withdrawn = []
    for offer in offers:
        ended = db.session.execute(
            update(Offer)
            .where(Offer.id == offer.id, Offer.state == OfferState.PENDING)
            .values(state=OfferState.CANCELLED, decided_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if ended:
            requeue(offer.lead_id)
            withdrawn.append(offer.id)
    db.session.commit()
    for offer_id in withdrawn:
        after_decision(ended_of(offer_id), agent_free=False)
    return withdrawn


def lead_assigned_by_hand(contact_id: int, owner_id: int) -> None:
    """A person assigned the contact: its waiting or offered leads are dealt
    with, and any pending offer for them is withdrawn. Commits."""
    withdrawn: list[int] = []
    for _attempt in range(MAX_ATTEMPTS):
        lead_ids = list(
            db.session.scalars(
                select(Lead.id).where(
                    Lead.contact_id == contact_id,
                    Lead.state.in_((LeadState.QUEUED, LeadState.OFFERED)),
                )
            )
        )
        if not lead_ids:
            db.session.rollback()
            break
        now = utcnow()
        pending = db.session.execute(
            select(Offer.id, Offer.lead_id).where(
                Offer.lead_id.in_(lead_ids), Offer.state == OfferState.PENDING
            )
        ).all()
        freed: list[int] = []
        for offer_id, lead_id in pending:
            # Offer before lead, the order accept and expiry lock them in.
            if db.session.execute(
                update(Offer)
                .where(Offer.id == offer_id, Offer.state == OfferState.PENDING)
                .values(state=OfferState.CANCELLED, decided_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount:
                withdrawn.append(offer_id)
                freed.append(lead_id)
        # An "offered" lead is taken only when this transaction withdrew its
        # offer: one a routing offered meanwhile keeps a pending offer, and
        # the next pass withdraws it (rather than leave it pending on a lead
        # already assigned, where an accept would take the contact).
        db.session.execute(
            update(Lead)
            .where(
                Lead.id.in_(lead_ids),
                or_(
                    Lead.state == LeadState.QUEUED,
                    and_(
                        Lead.state == LeadState.OFFERED,
                        Lead.id.in_(freed or [-1]),
                    ),
                ),
            )
            .values(state=LeadState.ASSIGNED, accepted_by_id=owner_id, accepted_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    for offer_id in withdrawn:
        offer = ended_of(offer_id)
        try:
            push.offer_ended(offer)
        except Exception:
            log.exception("pushing the withdrawal of offer %s failed", offer_id)
        route_soon(agent_id=offer.agent_id)


def withdraw_for_new_owners(
    sender: object, *, how: AssignmentHow, owners: dict[int, int]
) -> None:
    """The roulette's answer to contacts' `owner_changed`: a contact given to
    someone has its waiting or offered leads made theirs, also when it had an
    owner (an offline owner's lead goes round the roulette, and a manager may
    hand the contact to someone else)."""
    for contact_id, owner_id in owners.items():
        lead_assigned_by_hand(contact_id, owner_id)
