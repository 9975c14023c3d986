"""The agent's side of the roulette: the switch and the offer buttons.

The offer pop-up itself arrives over the websocket (`portal.roulette.push`);
these endpoints answer its Accept and Decline buttons and the "available"
switch in the top bar (CONTRACT: Browser endpoints).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from portal.auth.access import require
from portal.errors import Conflict, NotFound, ValidationError
from portal.errors_http import error_response
from portal.extensions import db
from portal.models import AgentState
from portal.rendering import render
from portal.roulette import decisions, push, switch
from portal.roulette.pool import RECEIVE

bp = Blueprint("roulette", __name__)
log = logging.getLogger(__name__)

PUSH = "roulette/_push.html"


def _switch(**state: bool) -> str:
    """The presence switch as a page carries it (with its CSRF field)."""
    return render(PUSH, "presence", pushed=False, automatic=False, **state)


def presence_switch() -> Markup:
    """For base.html: the signed-in agent's switch, or nothing for users who
    do not receive leads.

    Reads only: unlike `switch.switch_context`, it never creates the agent's
    state row, so showing a page writes nothing.
    """
    if not (current_user.is_authenticated and current_user.can(RECEIVE)):
        return Markup("")
    try:
        state = db.session.get(AgentState, current_user.id)
        html = _switch(
            available=bool(state and state.available),
            online=switch.is_online(current_user),
        )
    except (SQLAlchemyError, RedisError):
        # Error pages extend base.html too: a failed transaction or a Redis
        # outage must not turn the page explaining it into another error.
        log.warning("the presence switch could not be shown", exc_info=True)
        return Markup("")
    # Rendered by Jinja with autoescaping: safe to embed as it is.
    return Markup(html)  # noqa: S704


def _back() -> str:
    """Where a plain form post returns: the page it came from on this site."""
    referrer = request.referrer or ""
    if referrer and urlsplit(referrer).netloc == request.host:
        return referrer
    return url_for("main.home")


@bp.post("/presence")
@require(RECEIVE)
def set_presence() -> ResponseReturnValue:
    """Switch the agent available (1) or unavailable (0)."""
    raw = request.form.get("available", "")
    if raw not in ("0", "1"):
        return error_response(
            422, _("The field “available” takes 1 (available) or 0 (unavailable).")
        )
    switch.set_available(current_user, raw == "1")
    if not request.htmx:
        return redirect(_back(), 303)
    return _switch(**switch.switch_context(current_user))


def _ended(ended: push.Ended, refusal: str | None = None) -> str:
    return render(
        PUSH, "offer_state", iso=push.iso, refusal=refusal, **push.ended_context(ended)
    )


def _refused(offer_id: int, message: str) -> ResponseReturnValue:
    """409: the offer as it ended, saying why the answer came too late."""
    if not request.htmx:
        return error_response(409, message)
    return _ended(push.ended_of(offer_id), refusal=message), 409


@bp.post("/offers/<int:offer_id>/accept")
@require(RECEIVE)
def accept(offer_id: int) -> ResponseReturnValue:
    """Take the lead; htmx is sent on to the contact (HX-Redirect)."""
    try:
        ended = decisions.accept(current_user, offer_id)
    except NotFound:
        abort(404)
    except Conflict as exc:
        return _refused(offer_id, str(exc))
    contact_url = url_for("contacts.show", contact_id=ended.contact_id)
    if not request.htmx:
        return redirect(contact_url, 303)
    return _ended(ended), 200, {"HX-Redirect": contact_url}


@bp.post("/offers/<int:offer_id>/decline")
@require(RECEIVE)
def decline(offer_id: int) -> ResponseReturnValue:
    """Pass the lead on to the next agent."""
    try:
        ended = decisions.decline(
            current_user, offer_id, request.form.get("reason") or None
        )
    except ValidationError as exc:
        return error_response(422, exc.fields["reason"], exc.fields)
    except NotFound:
        abort(404)
    except Conflict as exc:
        return _refused(offer_id, str(exc))
    if not request.htmx:
        return redirect(_back(), 303)
    return _ended(ended)
