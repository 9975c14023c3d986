"""Teams, units and departments pages.

Each page lists its rows (filtered as you type), creates rows from a form at
the top, renames a row in place and deletes rows. An htmx request gets the
block of the page it asked for; a plain form post gets a 303 back to the list,
so every page also works without JavaScript.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.auth.access import can, require
from portal.errors import NotFound, ValidationError
from portal.org import department_hours as hours_admin
from portal.org import hours, service
from portal.org.sections import (
    DEPARTMENTS,
    TEAMS,
    UNITS,
    confirm_delete,
    confirmed_members,
    create_row,
    delete_row,
    edit_row,
    index_page,
    one,
    page,
    row_view,
    update_row,
)
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("org", __name__)


# --- Teams -------------------------------------------------------------------


@bp.get("/teams")
@require("teams.manage")
def teams() -> ResponseReturnValue:
    return index_page(TEAMS)


@bp.post("/teams")
@require("teams.manage")
def team_create() -> ResponseReturnValue:
    return create_row(TEAMS)


@bp.get("/teams/<int:team_id>")
@require("teams.manage")
def team_row(team_id: int) -> ResponseReturnValue:
    return row_view(TEAMS, team_id)


@bp.get("/teams/<int:team_id>/edit")
@require("teams.manage")
def team_edit(team_id: int) -> ResponseReturnValue:
    return edit_row(TEAMS, team_id)


@bp.post("/teams/<int:team_id>")
@require("teams.manage")
def team_update(team_id: int) -> ResponseReturnValue:
    return update_row(TEAMS, team_id)


@bp.get("/teams/<int:team_id>/delete")
@require("teams.manage")
def team_confirm_delete(team_id: int) -> ResponseReturnValue:
    return confirm_delete(TEAMS, team_id)


@bp.post("/teams/<int:team_id>/delete")
@require("teams.manage")
def team_delete(team_id: int) -> ResponseReturnValue:
    return delete_row(TEAMS, team_id, confirmed_members=confirmed_members())


# --- Units -------------------------------------------------------------------


@bp.get("/units")
@require("units.manage")
def units() -> ResponseReturnValue:
    return index_page(UNITS)


@bp.post("/units")
@require("units.manage")
def unit_create() -> ResponseReturnValue:
    return create_row(UNITS)


@bp.get("/units/<int:unit_id>")
@require("units.manage")
def unit_row(unit_id: int) -> ResponseReturnValue:
    return row_view(UNITS, unit_id)


@bp.get("/units/<int:unit_id>/edit")
@require("units.manage")
def unit_edit(unit_id: int) -> ResponseReturnValue:
    return edit_row(UNITS, unit_id)


@bp.post("/units/<int:unit_id>")
@require("units.manage")
def unit_update(unit_id: int) -> ResponseReturnValue:
    return update_row(UNITS, unit_id)


@bp.get("/units/<int:unit_id>/delete")
@require("units.manage")
def unit_confirm_delete(unit_id: int) -> ResponseReturnValue:
    return confirm_delete(UNITS, unit_id)


@bp.post("/units/<int:unit_id>/delete")
@require("units.manage")
def unit_delete(unit_id: int) -> ResponseReturnValue:
    return delete_row(UNITS, unit_id, confirmed_members=confirmed_members())


@bp.post("/units/<int:unit_id>/store-flow")
@require("units.manage", "settings.manage")
def unit_store_flow(unit_id: int) -> Response | str | tuple:
    """The store-flow switch, on the units page and on the settings page.

    The form says which page it sits on (`view`), so the answer is that page's
    row, or a redirect back to it. A unit's row names its members, so only
    units.manage gets it.
    """
    from_settings = request.form.get("view") == "settings"
    if not from_settings and not can("units.manage"):
        abort(403)
    account = current_account()
    enabled = request.form.get("store_flow") == "1"
    try:
        unit = service.set_store_flow(account, unit_id, enabled)
    except NotFound:
        abort(404)
    if enabled:
        message = _("Store flow is on for %(name)s.", name=unit.name)
    else:
        message = _("Store flow is off for %(name)s.", name=unit.name)
    if not request.htmx:
        flash(message, "success")
        back = "settings.index" if from_settings else "org.units"
        return redirect(url_for(back), code=303)
    if from_settings:
        return render(
            "settings/index.html", "store_flow_switched", unit=unit, message=message
        )
    row = one(UNITS, account, unit_id)
    return render(UNITS.template, "row_updated", row=row, message=message)


# --- Departments -------------------------------------------------------------


@bp.get("/departments")
@require("departments.manage")
def departments() -> ResponseReturnValue:
    return index_page(DEPARTMENTS)


@bp.post("/departments")
@require("departments.manage")
def department_create() -> ResponseReturnValue:
    return create_row(DEPARTMENTS)


@bp.get("/departments/<int:department_id>")
@require("departments.manage")
def department_row(department_id: int) -> ResponseReturnValue:
    return row_view(DEPARTMENTS, department_id)


@bp.get("/departments/<int:department_id>/edit")
@require("departments.manage")
def department_edit(department_id: int) -> ResponseReturnValue:
    return edit_row(DEPARTMENTS, department_id)


@bp.post("/departments/<int:department_id>")
@require("departments.manage")
def department_update(department_id: int) -> ResponseReturnValue:
    return update_row(DEPARTMENTS, department_id)


def _hours_context(values: dict[str, str], errors: dict[str, str]) -> dict:
    """What the working-hours form of a department row reads."""
    return {
        "hours_values": values,
        "hours_errors": errors,
        "weekdays": hours.weekday_names(),
        "time_zones": hours_admin.time_zones(),
    }


@bp.get("/departments/<int:department_id>/hours")
@require("departments.manage")
def department_hours(department_id: int) -> ResponseReturnValue:
    """The department's row as the working-hours form (the whole page,
    with that row open, without htmx)."""
    account = current_account()
    row = one(DEPARTMENTS, account, department_id)
    context = _hours_context(hours_admin.hours_form_values(row.department), {})
    if request.htmx:
        return render(DEPARTMENTS.row_template, row=row, editing_hours=True, **context)
    return page(DEPARTMENTS, account, hours_id=department_id, **context)


@bp.post("/departments/<int:department_id>/hours")
@require("departments.manage")
def department_hours_update(department_id: int) -> ResponseReturnValue:
    """Save the working hours; an invalid day or time zone answers 422 with
    the error next to its field and saves nothing."""
    account = current_account()
    values = {
        name: request.form.get(name, "")[:100]
        for name in ("timezone", *_hours_fields())
    }
    spans = {
        day: (values[f"hours_{day}_start"], values[f"hours_{day}_end"])
        for day in hours.weekdays()
    }
    try:
        department = hours_admin.set_department_hours(
            account, department_id, spans, values["timezone"]
        )
    except NotFound:
        abort(404)
    except ValidationError as exc:
        context = _hours_context(values, exc.fields)
        if request.htmx:
            row = one(DEPARTMENTS, account, department_id)
            return render(
                DEPARTMENTS.row_template, row=row, editing_hours=True, **context
            ), 422
        return page(DEPARTMENTS, account, 422, hours_id=department_id, **context)
    message = _("Working hours of %(name)s saved.", name=department.name)
    if request.htmx:
        row = one(DEPARTMENTS, account, department_id)
        return render(DEPARTMENTS.template, "row_updated", row=row, message=message)
    flash(message, "success")
    return redirect(url_for(DEPARTMENTS.list_endpoint), code=303)


def _hours_fields() -> list[str]:
    return [
        f"hours_{day}_{end}" for day in hours.weekdays() for end in ("start", "end")
    ]


@bp.get("/departments/<int:department_id>/delete")
@require("departments.manage")
def department_confirm_delete(department_id: int) -> ResponseReturnValue:
    return confirm_delete(DEPARTMENTS, department_id)


@bp.post("/departments/<int:department_id>/delete")
@require("departments.manage")
def department_delete(department_id: int) -> ResponseReturnValue:
    return delete_row(DEPARTMENTS, department_id)
