"""The notification center (CONTRACT: Working together): `GET
/notifications`, `POST /notifications/<id>/read`, `POST
/notifications/read-all`; also `GET /notifications/badge` (the top bar's
count, read again when its socket reconnects) and `POST /notifications/mail`
(the digest's opt-out).

Everyone signed in has one. Another user's notification answers 404, like
one that does not exist. htmx gets named blocks of notifications/index.html
with the badge out of band; without htmx the marks redirect back (303).
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from portal.errors import NotFound
from portal.ids import parse_id
from portal.models import User
from portal.notifications import digest, push, service
from portal.rendering import fragment_wanted, render

bp = Blueprint("notifications", __name__)

PAGE = "notifications/index.html"
BADGE = push.BADGE


@bp.app_context_processor
def badge_context() -> dict:
    # A callable: only pages with the top bar read the count, once each.
    return {"unread_count": _unread_count}


def _unread_count() -> int:
    if not current_user.is_authenticated:
        return 0
    return service.current_unread(current_user._get_current_object())


def _viewer() -> User:
    return current_user._get_current_object()


def _with_badge(html: str) -> str:
    """A fragment plus the top bar's badge, out of band."""
    viewer = _viewer()
    return html + push.badge_html(service.unread_count(viewer.id), viewer.language)


@bp.get("/notifications")
@login_required
def index() -> ResponseReturnValue:
    before = parse_id(request.args.get("before", ""))
    page = service.page(_viewer(), before)
    if fragment_wanted() and before is not None:
        return render(PAGE, "items", page=page)
    return render(PAGE, page=page, mail=digest.setting_of(_viewer()))


@bp.post("/notifications/mail")
@login_required
def mail_setting() -> ResponseReturnValue:
    """Tick or untick "Mail me what I miss" (`digest` = on | off)."""
    wanted = request.form.get("digest", "")
    if wanted not in ("on", "off"):
        abort(422)
    mail = digest.set_opted_out(_viewer(), wanted == "off")
    if not fragment_wanted():
        return redirect(url_for("notifications.index"), code=303)
    return render(PAGE, "mail_setting", mail=mail)


@bp.get("/notifications/badge")
@login_required
def badge() -> ResponseReturnValue:
    """The badge as the database has it: the top bar asks each time its
    socket (re)connects, since pushes sent while it was away are lost."""
    return render(BADGE, unread=service.unread_count(_viewer().id), pushed=False)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def read(notification_id: int) -> ResponseReturnValue:
    try:
        notification = service.mark_read(_viewer(), notification_id)
    except NotFound:
        abort(404)
    if not fragment_wanted():
        return redirect(url_for("notifications.index"), code=303)
    return _with_badge(render(PAGE, "item", n=notification))


@bp.post("/notifications/read-all")
@login_required
def read_all() -> ResponseReturnValue:
    service.mark_all_read(_viewer())
    if not fragment_wanted():
        return redirect(url_for("notifications.index"), code=303)
    return _with_badge(render(PAGE, "items", page=service.page(_viewer())))
