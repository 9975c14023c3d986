"""The contact list's actions: the owner component (take or give a
contact), bulk assignment, saved views and the CSV export.

Routes of the `contacts` blueprint (views.py). A mutation answers htmx with
the updated fragment (a block of contacts/index.html or the owner partial)
and a plain form post with a 303 back to the list it came from.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from portal.auth.access import require
from portal.contacts import (
    assignment,
    export,
    list_filters,
    pages,
    saved_filters,
    scope,
)
from portal.contacts.views import (
    INDEX,
    VIEW_PERMISSIONS,
    assignable_users,
    bp,
    current_viewer,
    list_url,
)
from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.errors_http import error_response
from portal.extensions import db
from portal.ids import parse_id
from portal.models import Contact, User
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account

MAX_BULK = 500


# --- Assigning ----------------------------------------------------------------


def _owner_fragment(
    contact: Contact, status: int = 200, error: str | None = None
) -> ResponseReturnValue:
    html = render(
        "contacts/_owner.html",
        contact=contact,
        # Only those who assign get a picker; agents' claims skip the query.
        assignees=(
            assignable_users(current_user)
            if current_user.can("contacts.assign")
            else []
        ),
        error=error,
    )
    return html, status


@bp.get("/contacts/<int:contact_id>/owner")
@require(*VIEW_PERMISSIONS)
def owner(contact_id: int) -> ResponseReturnValue:
    """The owner component with its full assign control (the list's rows
    fetch it when "Change" is pressed)."""
    try:
        contact = scope.get_visible(current_user, contact_id)
    except NotFound:
        abort(404)
    return _owner_fragment(contact)


@bp.post("/contacts/<int:contact_id>/assign")
@require("contacts.claim", "contacts.assign")
def assign(contact_id: int) -> ResponseReturnValue:
    """Take (empty user_id) or give the contact; answers the owner component."""
    to_user_id = request.form.get("user_id") or None
    try:
        contact = assignment.assign(current_user, contact_id, to_user_id)
    except NotFound:
        abort(404)
    except Forbidden as exc:
        return _refused(contact_id, 403, str(exc))
    except Conflict as exc:
        return _refused(contact_id, 409, str(exc))
    if not request.htmx:
        return redirect(request.referrer or url_for("contacts.index"), code=303)
    return _owner_fragment(contact)


def _refused(contact_id: int, status: int, message: str) -> ResponseReturnValue:
    """The owner component as it is now, with why the change was refused."""
    contact = db.session.get(Contact, contact_id)
    db.session.refresh(contact)
    return _owner_fragment(contact, status, message)


def _back_url() -> str:
    """The list the form came from: its filters only, never another site."""
    pairs = parse_qsl(request.form.get("back", ""), keep_blank_values=False)
    return list_url({k: v for k, v in pairs if k in list_filters.FILTER_KEYS})


def _bulk_summary(result: assignment.BulkResult) -> str:
    assigned = ngettext("%(num)d assigned", "%(num)d assigned", len(result.assigned))
    if not result.failed:
        return _("%(assigned)s.", assigned=assigned)
    reasons = " ".join(dict.fromkeys(result.failed.values()))
    return _(
        "%(assigned)s; %(refused)d refused: %(reasons)s",
        assigned=assigned,
        refused=len(result.failed),
        reasons=reasons,
    )


def _bulk_input() -> tuple[list[int], int]:
    """Selected contact ids and the assignee; raises ValidationError."""
    raw_ids = request.form.getlist("contact_id")
    errors: dict[str, str] = {}
    if not raw_ids:
        errors["contact_id"] = _("Select at least one contact.")
    elif len(raw_ids) > MAX_BULK:
        errors["contact_id"] = _("Select at most %(n)d contacts.", n=MAX_BULK)
    elif None in map(parse_id, raw_ids):
        errors["contact_id"] = _("Pick from the list.")
    raw_user = (request.form.get("user_id") or "").strip()
    if parse_id(raw_user) is None:
        errors["user_id"] = _("Pick whom to assign to.")
    if errors:
        raise ValidationError(errors)
    return [int(raw) for raw in raw_ids], int(raw_user)


@bp.post("/contacts/bulk-assign")
@require("contacts.assign")
def bulk_assign() -> ResponseReturnValue:
    """Assign the selected contacts to one person; each contact wins or is
    refused on its own. htmx gets a summary and the refreshed rows."""
    viewer = current_viewer()
    try:
        ids, to_user_id = _bulk_input()
    except ValidationError as exc:
        message = " ".join(exc.fields.values())
        if fragment_wanted():
            return render(INDEX, "bulk_done", message=message, level="error"), 422
        flash(message, "error")
        return redirect(_back_url(), code=303)
    result = assignment.bulk_assign(viewer, ids, to_user_id)
    message = _bulk_summary(result)
    level = "error" if result.failed else "success"
    if not fragment_wanted():
        flash(message, level)
        return redirect(_back_url(), code=303)
    db.session.expire_all()
    assignees = assignable_users(viewer)
    contacts = list(
        db.session.scalars(
            pages.with_related(
                select(Contact).where(Contact.id.in_(ids), scope.visible_clause(viewer))
            )
        )
    )
    return render(
        INDEX,
        "bulk_done",
        message=message,
        level=level,
        contacts=contacts,
        assignees=assignees,
        compact_owner=True,
        bulk=True,
    )


# --- Saved views --------------------------------------------------------------


def _saved_response(
    viewer: User, errors: dict[str, str] | None = None, **extra: Any
) -> ResponseReturnValue:
    errors = errors or {}
    return render(
        INDEX,
        "saved_views",
        saved=saved_filters.list_saved(viewer),
        save_errors=errors,
        **extra,
    ), (422 if errors else 200)


@bp.post("/contacts/saved-views")
@require(*VIEW_PERMISSIONS)
def save_view() -> ResponseReturnValue:
    """Save the current filters under a name (the same name replaces)."""
    viewer = current_viewer()
    try:
        saved = saved_filters.save(
            viewer,
            current_account(),
            request.form.get("name", ""),
            request.form.get("query", ""),
        )
    except ValidationError as exc:
        if fragment_wanted():
            return _saved_response(viewer, exc.fields, name=request.form.get("name"))
        flash(" ".join(exc.fields.values()), "error")
        return redirect(_back_url(), code=303)
    if fragment_wanted():
        return _saved_response(viewer)
    flash(_("View “%(name)s” saved.", name=saved.name), "success")
    return redirect(list_url(dict(parse_qsl(saved.query))), code=303)


@bp.post("/contacts/saved-views/<int:filter_id>/delete")
@require(*VIEW_PERMISSIONS)
def delete_view(filter_id: int) -> ResponseReturnValue:
    """Delete one of the viewer's saved views (anyone else's answers 404)."""
    viewer = current_viewer()
    try:
        saved_filters.delete(viewer, filter_id)
    except NotFound:
        abort(404)
    if fragment_wanted():
        return _saved_response(viewer)
    return redirect(url_for("contacts.index"), code=303)


# --- Export -------------------------------------------------------------------


@bp.get("/contacts/export.csv")
@require("contacts.export")
def export_csv() -> ResponseReturnValue:
    """The filtered list as CSV, streamed in keyset chunks."""
    args = request.args.copy()
    args.pop("cursor", None)  # an export is the whole list, from its start
    try:
        filters = list_filters.parse_filters(current_account(), args, current_viewer())
    except ValidationError as exc:
        return error_response(
            422,
            " ".join(f"{name}: {message}" for name, message in exc.fields.items()),
        )
    return export.csv_response(current_viewer(), filters)
