from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.access import require

bp = Blueprint("org", __name__)


@bp.get("/teams")
@require("teams.manage")
def teams():
    return render_template("org/teams.html")


@bp.get("/units")
@require("units.manage")
def units():
    return render_template("org/units.html")


@bp.get("/departments")
@require("departments.manage")
def departments():
    return render_template("org/departments.html")
