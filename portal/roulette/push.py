"""Websocket pushes of the roulette, rendered in each recipient's language.

The promise: every push is rendered from one typed value per fragment,
whichever path produced it: the offer pop-up from an `OfferCard` (built from
what a dispatch read already, or by `card_of` in one read), the end of an
offer from an `Ended`. So a pop-up placed by the router and one re-sent on
reconnect cannot drift apart. Pushes are published, never waited on;
callers push only after the commit they describe.

Fragments come from `roulette/_push.html` (one named block each) and are
swapped by htmx out of band, by id: the offer pop-up goes into `#offer-tray`,
later states replace `#offer-<id>`, the presence switch replaces itself and a
notification lands at the top of `#notification-tray`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, has_request_context
from flask_babel import force_locale
from sqlalchemy import select
from werkzeug.routing import MapAdapter

from portal.extensions import db
from portal.models import Contact, Department, Lead, Notification, Offer, User
from portal.models.base import utcnow
from portal.models.roulette import DECLINE_REASONS
from portal.realtime.hub import publish

TEMPLATE = "roulette/_push.html"


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as CONTRACT's data-expires-at says."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_for(user: User, block: str, **context: Any) -> str:
    """Render a block of the push template as `user` would read it."""
    return render_in(user.language, block, **context)


def render_in(language: str | None, block: str, **context: Any) -> str:
    """Render a block of the push template in `language` (None: English).

    Only the template's own names, Jinja's globals and `context`: the push
    blocks use no context processor's value, and running them (and, outside
    a request, building a request context for them) cost more per push than
    the rendering itself.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    names: dict[str, Any] = {
        "iso": iso,
        "pushed": True,
        "decline_reasons": DECLINE_REASONS,
        **context,
    }
    if not has_request_context():
        # The router thread and jobs have no request: their links are built
        # as a request to PUBLIC_URL would build them.
        urls = _public_urls(app)
        names["url_for"] = lambda endpoint, **values: urls.build(endpoint, values)
    template = app.jinja_env.get_or_select_template(TEMPLATE)
    with force_locale(language or "en"):
        return "".join(template.blocks[block](template.new_context(names)))


def _public_urls(app: Flask) -> MapAdapter:
    """The app's URL map bound as a request to PUBLIC_URL binds it, made once
    per app (the request context is created, never pushed)."""
    urls = app.extensions.get("roleta.push_urls")
    if urls is None:
        base = app.config.get("PUBLIC_URL") or "http://localhost/"
        urls = app.test_request_context(base_url=base).url_adapter
        app.extensions["roleta.push_urls"] = urls
    return urls


# ------------------------------------------------------------ the pop-up


@dataclass(frozen=True)
class OfferCard:
    """Everything the offer pop-up shows, and to whom: the one context of
    the `offer` block."""

    offer_id: int
    lead_id: int
    agent_id: int
    offered_at: datetime
    expires_at: datetime
    contact_name: str
    source: str | None
    message: str | None
    department_name: str | None
    language: str | None  # the agent's

    @property
    def timeout_seconds(self) -> int:
        return int((self.expires_at - self.offered_at).total_seconds())

    def seconds_left(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


def card_of(offer_id: int) -> OfferCard | None:
    """The offer's pop-up as the database has it, in one read (None: no
    such offer)."""
    row = db.session.execute(
        select(
            Offer.id,
            Offer.lead_id,
            Offer.agent_id,
            Offer.offered_at,
            Offer.expires_at,
            Contact.name,
            Lead.source,
            Lead.message,
            Department.name,
            User.language,
        )
        .join(Lead, Lead.id == Offer.lead_id)
        .join(Contact, Contact.id == Lead.contact_id)
        .outerjoin(Department, Department.id == Lead.department_id)
        .join(User, User.id == Offer.agent_id)
        .where(Offer.id == offer_id)
    ).first()
    return OfferCard(*row) if row is not None else None


def render_offer(card: OfferCard) -> str:
    """The pop-up, in its agent's language."""
    return render_in(
        card.language, "offer", card=card, seconds_left=card.seconds_left(utcnow())
    )


def offer_html(offer_id: int) -> str | None:
    """The offer's pop-up as the database has it (None: no such offer)."""
    card = card_of(offer_id)
    return render_offer(card) if card is not None else None


def offer(card: OfferCard) -> None:
    """Push a new pending offer to its agent."""
    publish(card.agent_id, render_offer(card))


# ------------------------------------------------------- an offer's end


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


def ended_context(ended: Ended) -> dict[str, Any]:
    """The `offer_state` block's context."""
    return {"offer": ended}


def offer_ended(ended: Ended) -> None:
    """Push the end of an offer to its agent, in their language."""
    html = render_in(ended.language, "offer_state", **ended_context(ended))
    publish(ended.agent_id, html)


# ------------------------------------------------- the switch, the bell


def presence(user: User, *, available: bool, online: bool, automatic: bool) -> None:
    """Push the agent's switch (to every tab) after it changed."""
    publish(
        user.id,
        render_for(
            user, "presence", available=available, online=online, automatic=automatic
        ),
    )


def notification(notification_id: int, user_id: int) -> None:
    found = db.session.get(Notification, notification_id)
    user = db.session.get(User, user_id)
    if found is not None and user is not None:
        publish(user_id, render_for(user, "notification", notification=found))
