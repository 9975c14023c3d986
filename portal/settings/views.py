from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.access import require

bp = Blueprint("settings", __name__)


@bp.get("/settings")
@require("settings.manage")
def index():
    return render_template("settings/index.html")
