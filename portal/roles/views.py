from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.access import require

bp = Blueprint("roles", __name__)


@bp.get("/roles")
@require("roles.manage")
def index():
    return render_template("roles/index.html")
