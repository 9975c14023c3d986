"""The roles page: built-in roles to read, custom roles to compose.

The role editor opens in place above the list (htmx) or as the same page at
its own URL (/admin/roles/new, /admin/roles/<id>/edit) without JavaScript.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.access import require
from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.errors_http import error_response
from portal.ids import parse_id
from portal.models import Role
from portal.models.permissions import PERMISSIONS, grouped_permissions
from portal.rendering import render
from portal.roles import service
from portal.settings.service import current_account

bp = Blueprint("roles", __name__)

TEMPLATE = "roles/index.html"


def _targets(element_id: str) -> bool:
    """Did htmx ask for the element `element_id`? (htmx 4 sends "tag#id".)"""
    target = request.htmx.target if request.htmx else None
    return bool(target) and target.rsplit("#", 1)[-1] == element_id


def _query() -> str:
    return request.values.get("q", "").strip()


def _context(**context: object) -> dict:
    """What every part of the page needs to show permissions."""
    context.setdefault("editor", None)
    context.setdefault("errors", {})
    return {
        "labels": {p.key: p.label for p in PERMISSIONS},
        "groups": grouped_permissions(),
        "grantable": service.grantable_permissions(current_user),
        "q": _query(),
        **context,
    }


def _form_input() -> service.RoleInput:
    return service.RoleInput(
        key=request.form.get("key", ""),
        name=request.form.get("name", ""),
        permissions=request.form.getlist("permissions"),
        restricted_by_default=request.form.get("restricted_by_default") == "1",
    )


def _editor_for_input(data: service.RoleInput, role: Role | None = None) -> dict:
    return {
        "role": role,
        "key": role.key if role else data.key,
        "name": data.name,
        "permissions": set(data.permissions),
        "restricted_by_default": data.restricted_by_default,
    }


def _editor_for_role(role: Role, copy: bool = False) -> dict:
    return {
        "role": None if copy else role,
        "key": "" if copy else role.key,
        "name": "" if copy else role.name,
        "permissions": set(role.permissions),
        "restricted_by_default": role.restricted_by_default,
    }


def _show(status: int = 200, **context: object) -> ResponseReturnValue:
    """The editor alone for htmx, else the whole page around it."""
    if request.htmx:
        return render(TEMPLATE, "editor", **_context(**context)), status
    rows = service.list_roles(current_account(), _query())
    return render(TEMPLATE, **_context(rows=rows, **context)), status


def _saved(message: str) -> ResponseReturnValue:
    """After a save: htmx gets a closed editor, the fresh list and a flash."""
    if not request.htmx:
        flash(message, "success")
        return redirect(url_for("roles.index"), code=303)
    rows = service.list_roles(current_account(), _query())
    html = render(TEMPLATE, "saved", **_context(rows=rows, message=message))
    return html, 200, {"HX-Push-Url": url_for("roles.index")}


@bp.get("/roles")
@require("roles.manage")
def index() -> ResponseReturnValue:
    if _targets("role-editor"):  # "Cancel" closes the editor
        return render(TEMPLATE, "editor", **_context())
    rows = service.list_roles(current_account(), _query())
    if _targets("role-list"):
        return render(TEMPLATE, "list", **_context(rows=rows))
    return render(TEMPLATE, **_context(rows=rows))


@bp.get("/roles/new")
@require("roles.manage")
def new() -> ResponseReturnValue:
    editor = _editor_for_input(service.RoleInput())
    source_id = parse_id(request.args.get("from"))
    if source_id is not None:  # start from a copy of another role
        try:
            source = service.get_role(current_account(), source_id)
        except NotFound:
            abort(404)
        editor = _editor_for_role(source, copy=True)
    return _show(editor=editor)


@bp.post("/roles")
@require("roles.manage")
def create() -> ResponseReturnValue:
    data = _form_input()
    try:
        role = service.create_role(current_account(), data, actor=current_user)
    except ValidationError as exc:
        return _show(422, editor=_editor_for_input(data), errors=exc.fields)
    return _saved(_("Role %(name)s created.", name=role.name))


@bp.get("/roles/<int:role_id>/edit")
@require("roles.manage")
def edit(role_id: int) -> ResponseReturnValue:
    try:
        role = service.get_role(current_account(), role_id)
    except NotFound:
        abort(404)
    if role.builtin:
        return error_response(403, _("Built-in roles cannot be changed or deleted."))
    return _show(editor=_editor_for_role(role))


@bp.post("/roles/<int:role_id>")
@require("roles.manage")
def update(role_id: int) -> ResponseReturnValue:
    account = current_account()
    data = _form_input()
    try:
        role = service.update_role(account, role_id, data, actor=current_user)
    except NotFound:
        abort(404)
    except Forbidden as exc:
        return error_response(403, str(exc))
    except ValidationError as exc:
        role = service.get_role(account, role_id)
        return _show(422, editor=_editor_for_input(data, role), errors=exc.fields)
    return _saved(_("Role %(name)s saved.", name=role.name))


@bp.get("/roles/<int:role_id>/delete")
@require("roles.manage")
def confirm_delete(role_id: int) -> ResponseReturnValue:
    """Without JavaScript the delete button lands here to ask first."""
    try:
        summary = service.role_summary(current_account(), role_id)
    except NotFound:
        abort(404)
    if summary.role.builtin:
        return error_response(403, _("Built-in roles cannot be changed or deleted."))
    return render("roles/delete.html", summary=summary)


@bp.post("/roles/<int:role_id>/delete")
@require("roles.manage")
def delete(role_id: int) -> ResponseReturnValue:
    try:
        name = service.delete_role(current_account(), role_id, actor=current_user)
    except NotFound:
        abort(404)
    except Forbidden as exc:
        return error_response(403, str(exc))
    except Conflict as exc:
        if request.htmx:
            return error_response(409, str(exc))
        flash(str(exc), "error")
        return redirect(url_for("roles.index"), code=303)
    message = _("Role %(name)s deleted.", name=name)
    if not request.htmx:
        flash(message, "success")
        return redirect(url_for("roles.index"), code=303)
    rows = service.list_roles(current_account(), _query())
    return render(TEMPLATE, "deleted", **_context(rows=rows, message=message))
