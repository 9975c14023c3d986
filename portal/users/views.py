from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.access import require

bp = Blueprint("users", __name__)


@bp.get("/users")
@require("users.manage")
def index():
    return render_template("users/index.html")
