from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.access import require

bp = Blueprint("imports", __name__)


@bp.get("/contacts/import")
@require("contacts.import")
def start():
    return render_template("imports/start.html")
