"""A contact's profile: details, owner, timeline; creating and editing."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user

from portal.auth.access import require
from portal.contacts import service
from portal.contacts.views import VIEW_PERMISSIONS
from portal.errors import NotFound

bp = Blueprint("contact", __name__)


@bp.get("/contacts/<int:contact_id>")
@require(*VIEW_PERMISSIONS)
def show(contact_id: int):
    try:
        contact = service.get_visible(current_user, contact_id)
    except NotFound:
        abort(404)
    return render_template("contacts/profile.html", contact=contact)
