"""Teams, units and departments pages.

Each page lists its rows (filtered as you type), creates rows from a form at
the top, renames a row in place and deletes rows. An htmx request gets the
block of the page it asked for; a plain form post gets a 303 back to the list,
so every page also works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.auth.access import can, require
from portal.errors import Conflict, NotFound, ValidationError
from portal.errors_http import error_response
from portal.models import Account
from portal.org import department_hours as hours_admin
from portal.org import hours, service
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("org", __name__)


@dataclass(frozen=True)
class Section:
    """What differs between the teams, units and departments pages."""

    name: str  # "team": endpoint prefix and element ids
    template: str
    row_template: str
    lister: Callable[..., list]
    creator: Callable[[Account, str, str], object]
    renamer: Callable[[Account, int, str], object]
    deleter: Callable[..., str]
    created: Callable[[str], str]
    renamed: Callable[[str], str]
    deleted: Callable[[str], str]

    @property
    def list_id(self) -> str:
        return f"{self.name}-list"

    @property
    def list_endpoint(self) -> str:
        return f"org.{self.name}s"


TEAMS = Section(
    name="team",
    template="org/teams.html",
    row_template="org/_team_row.html",
    lister=service.list_teams,
    creator=service.create_team,
    renamer=service.rename_team,
    deleter=service.delete_team,
    created=lambda name: _("Team %(name)s created.", name=name),
    renamed=lambda name: _("Team renamed to %(name)s.", name=name),
    deleted=lambda name: _("Team %(name)s deleted.", name=name),
)
UNITS = Section(
    name="unit",
    template="org/units.html",
    row_template="org/_unit_row.html",
    lister=service.list_units,
    creator=service.create_unit,
    renamer=service.rename_unit,
    deleter=service.delete_unit,
    created=lambda name: _("Unit %(name)s created.", name=name),
    renamed=lambda name: _("Unit renamed to %(name)s.", name=name),
    deleted=lambda name: _("Unit %(name)s deleted.", name=name),
)
DEPARTMENTS = Section(
    name="department",
    template="org/departments.html",
    row_template="org/_department_row.html",
    lister=service.list_departments,
    creator=service.create_department,
    renamer=service.rename_department,
    deleter=service.delete_department,
    created=lambda name: _("Department %(name)s created.", name=name),
    renamed=lambda name: _("Department renamed to %(name)s.", name=name),
    deleted=lambda name: _("Department %(name)s deleted.", name=name),
)


def _targets(element_id: str) -> bool:
    """Did htmx ask for the element `element_id`? (htmx 4 sends "tag#id".)"""
    target = request.htmx.target if request.htmx else None
    return bool(target) and target.rsplit("#", 1)[-1] == element_id


def _query() -> str:
    return request.values.get("q", "").strip()


def _one(section: Section, account: Account, row_id: int) -> Any:
    # Any: each section's lister returns its own summary type.
    rows = section.lister(account, ids=[row_id])
    if not rows:
        abort(404)
    return rows[0]


def _page(
    section: Section, account: Account, status: int = 200, **context: object
) -> ResponseReturnValue:
    """The whole page; `context` may name a row being edited or form errors."""
    context.setdefault("form", {})
    context.setdefault("errors", {})
    query = _query()
    rows = section.lister(account, query)
    return render(section.template, rows=rows, q=query, **context), status


def _index(section: Section) -> ResponseReturnValue:
    account = current_account()
    if _targets(section.list_id):
        query = _query()
        return render(section.template, "list", rows=section.lister(account, query))
    return _page(section, account)


def _create(section: Section) -> ResponseReturnValue:
    account = current_account()
    form = {"key": request.form.get("key", ""), "name": request.form.get("name", "")}
    try:
        row = section.creator(account, form["key"], form["name"])
    except ValidationError as exc:
        if request.htmx:
            return render(
                section.template, "create_form", form=form, errors=exc.fields
            ), 422
        return _page(section, account, 422, form=form, errors=exc.fields)
    message = section.created(row.name)
    if request.htmx:
        rows = section.lister(account, _query())
        return render(
            section.template,
            "created",
            form={},
            errors={},
            rows=rows,
            message=message,
        )
    flash(message, "success")
    return redirect(url_for(section.list_endpoint), code=303)


def _row(section: Section, row_id: int) -> ResponseReturnValue:
    """One row as shown in the list: what "Cancel" puts back."""
    row = _one(section, current_account(), row_id)
    if not request.htmx:
        return redirect(url_for(section.list_endpoint))
    return render(section.row_template, row=row)


def _edit(section: Section, row_id: int) -> ResponseReturnValue:
    account = current_account()
    row = _one(section, account, row_id)
    if request.htmx:
        return render(section.row_template, row=row, editing=True, form={}, errors={})
    return _page(section, account, editing_id=row_id)


def _update(section: Section, row_id: int) -> ResponseReturnValue:
    account = current_account()
    form = {"name": request.form.get("name", "")}
    try:
        renamed = section.renamer(account, row_id, form["name"])
    except NotFound:
        abort(404)
    except ValidationError as exc:
        if request.htmx:
            row = _one(section, account, row_id)
            return render(
                section.row_template,
                row=row,
                editing=True,
                form=form,
                errors=exc.fields,
            ), 422
        return _page(
            section, account, 422, editing_id=row_id, form=form, errors=exc.fields
        )
    message = section.renamed(renamed.name)
    if request.htmx:
        row = _one(section, account, row_id)
        return render(section.template, "row_updated", row=row, message=message)
    flash(message, "success")
    return redirect(url_for(section.list_endpoint), code=303)


def _confirm_delete(section: Section, row_id: int) -> ResponseReturnValue:
    """The page a browser without JavaScript shows before deleting."""
    row = _one(section, current_account(), row_id)
    return render("org/delete.html", section=section, row=row)


def _delete(
    section: Section, row_id: int, **confirmation: int | None
) -> ResponseReturnValue:
    account = current_account()
    try:
        name = section.deleter(account, row_id, **confirmation)
    except NotFound:
        abort(404)
    except Conflict as exc:
        if request.htmx:
            return error_response(409, str(exc))
        flash(str(exc), "error")
        return redirect(url_for(section.list_endpoint), code=303)
    message = section.deleted(name)
    if request.htmx:
        rows = section.lister(account, _query())
        return render(section.template, "deleted", rows=rows, message=message)
    flash(message, "success")
    return redirect(url_for(section.list_endpoint), code=303)


def _confirmed_members() -> int | None:
    try:
        return int(request.form.get("confirmed", ""))
    except ValueError:
        return None


# --- Teams -------------------------------------------------------------------


@bp.get("/teams")
@require("teams.manage")
def teams() -> ResponseReturnValue:
    return _index(TEAMS)


@bp.post("/teams")
@require("teams.manage")
def team_create() -> ResponseReturnValue:
    return _create(TEAMS)


@bp.get("/teams/<int:team_id>")
@require("teams.manage")
def team_row(team_id: int) -> ResponseReturnValue:
    return _row(TEAMS, team_id)


@bp.get("/teams/<int:team_id>/edit")
@require("teams.manage")
def team_edit(team_id: int) -> ResponseReturnValue:
    return _edit(TEAMS, team_id)


@bp.post("/teams/<int:team_id>")
@require("teams.manage")
def team_update(team_id: int) -> ResponseReturnValue:
    return _update(TEAMS, team_id)


@bp.get("/teams/<int:team_id>/delete")
@require("teams.manage")
def team_confirm_delete(team_id: int) -> ResponseReturnValue:
    return _confirm_delete(TEAMS, team_id)


@bp.post("/teams/<int:team_id>/delete")
@require("teams.manage")
def team_delete(team_id: int) -> ResponseReturnValue:
    return _delete(TEAMS, team_id, confirmed_members=_confirmed_members())


# --- Units -------------------------------------------------------------------


@bp.get("/units")
@require("units.manage")
def units() -> ResponseReturnValue:
    return _index(UNITS)


@bp.post("/units")
@require("units.manage")
def unit_create() -> ResponseReturnValue:
    return _create(UNITS)


@bp.get("/units/<int:unit_id>")
@require("units.manage")
def unit_row(unit_id: int) -> ResponseReturnValue:
    return _row(UNITS, unit_id)


@bp.get("/units/<int:unit_id>/edit")
@require("units.manage")
def unit_edit(unit_id: int) -> ResponseReturnValue:
    return _edit(UNITS, unit_id)


@bp.post("/units/<int:unit_id>")
@require("units.manage")
def unit_update(unit_id: int) -> ResponseReturnValue:
    return _update(UNITS, unit_id)


@bp.get("/units/<int:unit_id>/delete")
@require("units.manage")
def unit_confirm_delete(unit_id: int) -> ResponseReturnValue:
    return _confirm_delete(UNITS, unit_id)


@bp.post("/units/<int:unit_id>/delete")
@require("units.manage")
def unit_delete(unit_id: int) -> ResponseReturnValue:
    return _delete(UNITS, unit_id, confirmed_members=_confirmed_members())


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
    row = _one(UNITS, account, unit_id)
    return render(UNITS.template, "row_updated", row=row, message=message)


# --- Departments -------------------------------------------------------------


@bp.get("/departments")
@require("departments.manage")
def departments() -> ResponseReturnValue:
    return _index(DEPARTMENTS)


@bp.post("/departments")
@require("departments.manage")
def department_create() -> ResponseReturnValue:
    return _create(DEPARTMENTS)


@bp.get("/departments/<int:department_id>")
@require("departments.manage")
def department_row(department_id: int) -> ResponseReturnValue:
    return _row(DEPARTMENTS, department_id)


@bp.get("/departments/<int:department_id>/edit")
@require("departments.manage")
def department_edit(department_id: int) -> ResponseReturnValue:
    return _edit(DEPARTMENTS, department_id)


@bp.post("/departments/<int:department_id>")
@require("departments.manage")
def department_update(department_id: int) -> ResponseReturnValue:
    return _update(DEPARTMENTS, department_id)


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
    row = _one(DEPARTMENTS, account, department_id)
    context = _hours_context(hours_admin.hours_form_values(row.department), {})
    if request.htmx:
        return render(DEPARTMENTS.row_template, row=row, editing_hours=True, **context)
    return _page(DEPARTMENTS, account, hours_id=department_id, **context)


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
            row = _one(DEPARTMENTS, account, department_id)
            return render(
                DEPARTMENTS.row_template, row=row, editing_hours=True, **context
            ), 422
        return _page(DEPARTMENTS, account, 422, hours_id=department_id, **context)
    message = _("Working hours of %(name)s saved.", name=department.name)
    if request.htmx:
        row = _one(DEPARTMENTS, account, department_id)
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
    return _confirm_delete(DEPARTMENTS, department_id)


@bp.post("/departments/<int:department_id>/delete")
@require("departments.manage")
def department_delete(department_id: int) -> ResponseReturnValue:
    return _delete(DEPARTMENTS, department_id)
