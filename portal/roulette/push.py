"""Websocket pushes of the roulette, rendered in each recipient's language.

Fragments come from `roulette/_push.html` (one named block each) and are
swapped by htmx out of band, by id: the offer pop-up goes into `#offer-tray`,
later states replace `#offer-<id>`, the presence switch replaces itself and a
notification lands at the top of `#notification-tray`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from flask import current_app, has_request_context
from flask_babel import force_locale
from sqlalchemy import select

from portal.extensions import db
from portal.models import Contact, Department, Lead, Notification, Offer, User
from portal.models.base import utcnow
from portal.realtime.hub import publish
from portal.rendering import render_block

TEMPLATE = "roulette/_push.html"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as CONTRACT's data-expires-at says."""
    if moment is None:
        return None
    return (
        _aware(moment)
        .astimezone(UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def render_for(user: User, block: str, **context) -> str:
    """Render a block of the push template as `user` would read it."""
    return render_in(user.language, block, **context)


def render_in(language: str | None, block: str, **context) -> str:
    """Render a block of the push template in `language` (None: English)."""
    with ExitStack() as stack:
        if not has_request_context():
            # Jobs have no request: give url_for and the context processors one.
            base = current_app.config.get("PUBLIC_URL") or "http://localhost/"
            stack.enter_context(current_app.test_request_context(base_url=base))
        stack.enter_context(force_locale(language or "en"))
        return render_block(TEMPLATE, block, iso=iso, pushed=True, **context)


def offer_context(offer: Offer) -> dict:
    lead = db.session.get(Lead, offer.lead_id)
    contact = db.session.get(Contact, lead.contact_id)
    department = (
        db.session.get(Department, lead.department_id) if lead.department_id else None
    )
    left = (_aware(offer.expires_at) - utcnow()).total_seconds()
    return {
        "offer": offer,
        "lead": lead,
        "contact": contact,
        "department": department,
        "seconds_left": max(0, int(left)),
    }


def language_of(user_id: int) -> str | None:
    # Only the language: loading the User would also load its role and grants.
    return db.session.scalar(select(User.language).where(User.id == user_id))


def offer_html(offer: Offer) -> str:
    return render_in(language_of(offer.agent_id), "offer", **offer_context(offer))


@dataclass(frozen=True)
class OfferCard:
    """What the pop-up shows, as the router read it with the waiting lead:
    a placed offer is pushed without reading anything back."""

    lead_id: int
    contact_name: str
    source: str | None
    message: str | None
    department_name: str | None
    language: str | None


def placed_offer(placed, card: OfferCard) -> None:
    """Push an offer just placed (`service.Placed`) to its agent."""
    offer = SimpleNamespace(
        id=placed.offer_id,
        lead_id=card.lead_id,
        offered_at=placed.offered_at,
        expires_at=placed.expires_at,
    )
    left = (_aware(placed.expires_at) - utcnow()).total_seconds()
    html = render_in(
        card.language,
        "offer",
        offer=offer,
        lead=SimpleNamespace(source=card.source, message=card.message),
        contact=SimpleNamespace(name=card.contact_name),
        department=(
            SimpleNamespace(name=card.department_name) if card.department_name else None
        ),
        seconds_left=max(0, int(left)),
    )
    publish(placed.agent_id, html)


def offer(offer_id: int) -> None:
    """Push a new pending offer to its agent."""
    found = db.session.get(Offer, offer_id)
    if found is not None:
        publish(found.agent_id, offer_html(found))


@dataclass(frozen=True)
class Ended:
    """An offer that ended (accepted, declined, expired, withdrawn) with what
    its end shows: the decision captures it in its own transaction, so the
    push and the answer to the click render without reading anything back."""

    id: int
    lead_id: int
    agent_id: int
    state: str
    expires_at: datetime
    decided_at: datetime | None
    contact_id: int
    contact_name: str
    language: str | None  # the agent's, for the push


def ended_of(offer_id: int) -> Ended | None:
    """The offer as its end shows, in one read (None: no such offer)."""
    row = db.session.execute(
        select(
            Offer.id,
            Offer.lead_id,
            Offer.agent_id,
            Offer.state,
            Offer.expires_at,
            Offer.decided_at,
            Contact.id,
            Contact.name,
            User.language,
        )
        .join(Lead, Lead.id == Offer.lead_id)
        .join(Contact, Contact.id == Lead.contact_id)
        .join(User, User.id == Offer.agent_id)
        .where(Offer.id == offer_id)
    ).first()
    return Ended(*row) if row is not None else None


def ended_context(ended: Ended) -> dict:
    """The `offer_state` block's context."""
    return {
        "offer": ended,
        "contact": SimpleNamespace(id=ended.contact_id, name=ended.contact_name),
    }


def offer_ended(ended: Ended) -> None:
    """Push the end of an offer to its agent, in their language."""
    html = render_in(ended.language, "offer_state", **ended_context(ended))
    publish(ended.agent_id, html)


def offer_state(offer_id: int) -> None:
    """Push the end of an offer, reading it and its agent's language."""
    ended = ended_of(offer_id)
    if ended is not None:
        offer_ended(ended)


def presence(user_id: int, automatic: bool = False) -> None:
    """Push the agent's switch (to every tab) after it changed."""
    user = db.session.get(User, user_id)
    if user is None:
        return
    state = switch_context(user)
    publish(user_id, render_for(user, "presence", automatic=automatic, **state))


def switch_context(user: User) -> dict:
    """What the presence switch shows: the switch, and whether it is live."""
    from portal.roulette.service import agent_state, is_online

    state = agent_state(user)
    return {"available": state.available, "online": is_online(user)}


def notification(notification_id: int, user_id: int) -> None:
    found = db.session.get(Notification, notification_id)
    user = db.session.get(User, user_id)
    if found is not None and user is not None:
        publish(user_id, render_for(user, "notification", notification=found))
