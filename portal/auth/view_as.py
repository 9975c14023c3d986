"""Viewing the portal as another user (users.view_as), to see what they see.

The session keeps who is signed in; "view as" adds the user being viewed.
For each request the viewed user becomes current_user, and the portal is
read-only: every POST but ending it answers 403, and no live connection
opens (it would mark the viewed agent online for the roulette and hand
the viewer their offers). Every page shows a banner (id="view-as-banner").
Ended by POST /view-as/end, by signing out, or by the viewer or the viewed
user losing what allowed it (permission, status, a new session version).
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.access import require
from portal.auth.service import load_session_user
from portal.errors import ValidationError
from portal.errors_http import error_response
from portal.extensions import db
from portal.models import User

log = logging.getLogger(__name__)

bp = Blueprint("view_as", __name__)

PERMISSION = "users.view_as"
SESSION_KEY = "view_as"
# While viewing as, the POSTs allowed (ending it, signing out), and what
# never opens.
ALLOWED_POSTS = {"view_as.end", "auth.logout"}
BLOCKED_ENDPOINTS = {"realtime.websocket"}


def start(viewer: User, target: User | None) -> None:
    if target is None or target.account_id != viewer.account_id:
        raise ValidationError({"user": _("There is no such user.")})
    if target.id == viewer.id:
        raise ValidationError({"user": _("You are yourself already.")})
    if not target.is_active:
        raise ValidationError({"user": _("Only an active user can be viewed as.")})
    session[SESSION_KEY] = f"{target.id}:{target.session_version}"
    log.info("user %s views the portal as user %s", viewer.id, target.id)


def viewer() -> User | None:
    """Who is really signed in, when viewing as someone (else None)."""
    return g.get("view_as_viewer")


def apply() -> ResponseReturnValue | None:
    """before_request: make the viewed user current, or end a stale view."""
    g.pop("view_as_viewer", None)  # a request's own, even where g is shared
    raw = session.get(SESSION_KEY)
    if not raw:
        return None
    real = current_user._get_current_object()
    target = load_session_user(raw) if real.is_authenticated else None
    if (
        target is None
        or not real.can(PERMISSION)
        or target.account_id != real.account_id
        or target.id == real.id
    ):
        session.pop(SESSION_KEY, None)
        return None
    g.view_as_viewer = real
    g._login_user = target  # Flask-Login's current_user for this request
    if request.endpoint in BLOCKED_ENDPOINTS:
        abort(403)
    if request.method == "POST" and request.endpoint not in ALLOWED_POSTS:
        return error_response(
            403,
            _("You are viewing the portal as someone else: nothing can be changed."),
        )
    return None


@bp.post("/admin/users/<int:user_id>/view-as")
@require(PERMISSION)
def begin(user_id: int) -> ResponseReturnValue:
    try:
        start(current_user, db.session.get(User, user_id))
    except ValidationError:
        abort(404)
    return redirect(url_for("main.home"), code=303)


@bp.post("/view-as/end")
def end() -> ResponseReturnValue:
    was = viewer() is not None
    session.pop(SESSION_KEY, None)
    target = url_for("users.index") if was else url_for("main.home")
    return redirect(target, code=303)
