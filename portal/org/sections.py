"""What the teams, units and departments pages share: a Section says what
differs between them, and the handlers below serve any of the three (list,
create, rename in place, delete), an htmx block or a plain page each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.errors import Conflict, NotFound, ValidationError
from portal.errors_http import error_response
from portal.models import Account
from portal.org import service
from portal.rendering import render
from portal.settings.service import current_account


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


def targets(element_id: str) -> bool:
    """Did htmx ask for the element `element_id`? (htmx 4 sends "tag#id".)"""
    target = request.htmx.target if request.htmx else None
    return bool(target) and target.rsplit("#", 1)[-1] == element_id


def query_text() -> str:
    return request.values.get("q", "").strip()


def one(section: Section, account: Account, row_id: int) -> Any:
    # Any: each section's lister returns its own summary type.
    rows = section.lister(account, ids=[row_id])
    if not rows:
        abort(404)
    return rows[0]


def page(
    section: Section, account: Account, status: int = 200, **context: object
) -> ResponseReturnValue:
    """The whole page; `context` may name a row being edited or form errors."""
    context.setdefault("form", {})
    context.setdefault("errors", {})
    query = query_text()
    rows = section.lister(account, query)
    return render(section.template, rows=rows, q=query, **context), status


def index_page(section: Section) -> ResponseReturnValue:
    account = current_account()
    if targets(section.list_id):
        query = query_text()
        return render(section.template, "list", rows=section.lister(account, query))
    return page(section, account)


def create_row(section: Section) -> ResponseReturnValue:
    account = current_account()
    form = {"key": request.form.get("key", ""), "name": request.form.get("name", "")}
    try:
        row = section.creator(account, form["key"], form["name"])
    except ValidationError as exc:
        if request.htmx:
            return render(
                section.template, "create_form", form=form, errors=exc.fields
            ), 422
        return page(section, account, 422, form=form, errors=exc.fields)
    message = section.created(row.name)
    if request.htmx:
        rows = section.lister(account, query_text())
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


def row_view(section: Section, row_id: int) -> ResponseReturnValue:
    """One row as shown in the list: what "Cancel" puts back."""
    row = one(section, current_account(), row_id)
    if not request.htmx:
        return redirect(url_for(section.list_endpoint))
    return render(section.row_template, row=row)


def edit_row(section: Section, row_id: int) -> ResponseReturnValue:
    account = current_account()
    row = one(section, account, row_id)
    if request.htmx:
        return render(section.row_template, row=row, editing=True, form={}, errors={})
    return page(section, account, editing_id=row_id)


def update_row(section: Section, row_id: int) -> ResponseReturnValue:
    account = current_account()
    form = {"name": request.form.get("name", "")}
    try:
        renamed = section.renamer(account, row_id, form["name"])
    except NotFound:
        abort(404)
    except ValidationError as exc:
        if request.htmx:
            row = one(section, account, row_id)
            return render(
                section.row_template,
                row=row,
                editing=True,
                form=form,
                errors=exc.fields,
            ), 422
        return page(
            section, account, 422, editing_id=row_id, form=form, errors=exc.fields
        )
    message = section.renamed(renamed.name)
    if request.htmx:
        row = one(section, account, row_id)
        return render(section.template, "row_updated", row=row, message=message)
    flash(message, "success")
    return redirect(url_for(section.list_endpoint), code=303)


def confirm_delete(section: Section, row_id: int) -> ResponseReturnValue:
    """The page a browser without JavaScript shows before deleting."""
    row = one(section, current_account(), row_id)
    return render("org/delete.html", section=section, row=row)


def delete_row(
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
        rows = section.lister(account, query_text())
        return render(section.template, "deleted", rows=rows, message=message)
    flash(message, "success")
    return redirect(url_for(section.list_endpoint), code=303)


def confirmed_members() -> int | None:
    try:
        return int(request.form.get("confirmed", ""))
    except ValueError:
        return None
