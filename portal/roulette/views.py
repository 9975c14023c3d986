"""The agent's side of the roulette: the switch and the offer buttons."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

from portal.auth.access import require
from portal.errors import ValidationError
from portal.rendering import render
from portal.roulette import push, service

bp = Blueprint("roulette", __name__)

PUSH = "roulette/_push.html"


@bp.post("/presence")
@require(service.RECEIVE)
def set_presence():
    raw = request.form.get("available", "")
    if raw not in ("0", "1"):
        raise ValidationError({"available": "Use 1 or 0."})
    service.set_available(current_user, raw == "1")
    if not request.htmx:
        return redirect(request.referrer or url_for("main.home"), 303)
    return render(
        PUSH,
        "presence",
        pushed=False,
        automatic=False,
        **push.switch_context(current_user),
    )


@bp.post("/offers/<int:offer_id>/accept")
@require(service.RECEIVE)
def accept(offer_id: int):
    offer = service.accept(current_user, offer_id)
    html = render(PUSH, "offer_state", iso=push.iso, **push.offer_context(offer))
    return (
        html,
        200,
        {"HX-Redirect": url_for("contact.show", contact_id=offer.lead.contact_id)},
    )


@bp.post("/offers/<int:offer_id>/decline")
@require(service.RECEIVE)
def decline(offer_id: int):
    offer = service.decline(current_user, offer_id)
    return render(PUSH, "offer_state", iso=push.iso, **push.offer_context(offer))
