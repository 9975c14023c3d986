"""The API keys page (/admin/api-keys): create, list, revoke.

The new key is in the answer to its creation only (an htmx fragment, or the
whole page without JavaScript), never stored, never redirected through the
session; that answer is marked no-store.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user

from portal.apikeys import service
from portal.auth.access import require
from portal.errors import NotFound, ValidationError
from portal.models import Account
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("apikeys", __name__)

TEMPLATE = "apikeys/index.html"
PERMISSION = "api_keys.manage"


@bp.context_processor
def dates() -> dict:
    return {
        "when": lambda moment: format_datetime(moment, "short") if moment else "",
        "iso": lambda moment: moment.isoformat() if moment else "",
    }


def _context(account: Account, **context: object) -> dict:
    context.setdefault("form", {"name": "", "scopes": list(service.SCOPES)})
    context.setdefault("errors", {})
    context.setdefault("new_key", None)
    return {"keys": service.list_keys(account), "scopes": service.SCOPES, **context}


@bp.get("/api-keys")
@require(PERMISSION)
def index() -> ResponseReturnValue:
    return render(TEMPLATE, **_context(current_account()))


@bp.post("/api-keys")
@require(PERMISSION)
def create() -> ResponseReturnValue:
    account = current_account()
    form = {
        "name": request.form.get("name", ""),
        "scopes": request.form.getlist("scopes"),
    }
    try:
        new = service.create_key(account, form["name"], form["scopes"], current_user)
    except ValidationError as exc:
        context = _context(account, form=form, errors=exc.fields)
        if request.htmx:
            return render(TEMPLATE, "create_form", **context), 422
        return render(TEMPLATE, **context), 422
    context = _context(account, new_key=new)
    message = _("API key %(name)s created.", name=new.key.name)
    if request.htmx:
        body = render(TEMPLATE, "created", message=message, **context)
    else:
        flash(message, "success")
        body = render(TEMPLATE, **context)
    # The only copy of the secret: no cache, no back-button copy.
    return body, 200, {"Cache-Control": "no-store"}


@bp.post("/api-keys/<int:key_id>/revoke")
@require(PERMISSION)
def revoke(key_id: int) -> ResponseReturnValue:
    account = current_account()
    try:
        key = service.revoke_key(account, key_id)
    except NotFound:
        abort(404)
    message = _("API key %(name)s revoked.", name=key.name)
    if request.htmx:
        return render(TEMPLATE, "revoked", key=key, message=message)
    flash(message, "success")
    return redirect(url_for("apikeys.index"), code=303)
