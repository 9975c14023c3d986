"""A contact's profile: details, owner, status and timeline; creating and
editing contacts.

Every endpoint that names a contact answers 404 when the viewer may not see
it (the page and each fragment alike), and 403 when they see it but may not
do the action. htmx requests get the page's named blocks; the same URLs
without htmx render the whole page or redirect back to it (303).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    abort,
    flash,
    make_response,
    redirect,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.access import require
from portal.contacts import forms, matching, scope, service
from portal.contacts.labels import ORIGIN_LABELS, STATUS_LABELS
from portal.contacts.leads import contact_leads
from portal.contacts.views import (
    VIEW_PERMISSIONS,
    assignable_users,
    bp,
    current_viewer,
)
from portal.errors import Forbidden, NotFound, ValidationError
from portal.ids import parse_id
from portal.models import Contact, HistoryEntry
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account

PAGE = "contacts/profile.html"
NEW_PAGE = "contacts/new.html"

HOW_LABELS = {
    "self": _l("took it"),
    "manual": _l("assigned by hand"),
    "bulk": _l("bulk assignment"),
    "roulette": _l("roulette"),
    "rule": _l("rule"),
    "reassignment": _l("reassignment"),
    "import": _l("import"),
}
KIND_LABELS = {
    "note": _l("Note"),
    "call": _l("Call"),
    "status": _l("Status"),
    "assignment": _l("Owner"),
    "edit": _l("Edit"),
}


@bp.context_processor
def profile_context() -> dict:
    # `when` and `iso` come from the list's context processor (views.py).
    return {
        "status_label": lambda key: STATUS_LABELS.get(key, key or ""),
        "origin_label": lambda key: ORIGIN_LABELS.get(key, key or ""),
        "how_label": lambda key: HOW_LABELS.get(key, key or ""),
        "kind_label": lambda key: KIND_LABELS.get(key, key or ""),
        "duration": lambda seconds: format_timedelta(
            timedelta(seconds=seconds or 0), threshold=1.5, add_direction=False
        ),
        "status_choices": forms.STATUS_CHOICES,
        "history_kinds": forms.HISTORY_KINDS,
    }


def _visible_or_404(contact_id: int) -> Contact:
    try:
        return scope.get_visible(current_viewer(), contact_id)
    except NotFound:
        abort(404)


def _changeable_or_403(contact: Contact) -> None:
    if not service.may_change(current_viewer(), contact):
        abort(403)


def _before_arg(name: str = "before") -> int | None:
    raw = request.args.get(name, "")
    return parse_id(raw)


def _context(contact: Contact, **overrides: Any) -> dict[str, Any]:
    """Everything the profile page's blocks read, with form state at rest."""
    context = {
        "contact": contact,
        "may_change": service.may_change(current_viewer(), contact),
        "editing": False,
        "details_values": forms.values_for_contact(contact),
        "details_errors": {},
        "status_values": {"status": "", "reason": ""},
        "status_errors": {},
        "history_values": {"kind": "note", "body": ""},
        "history_errors": {},
    }
    context.update(overrides)
    if context["editing"]:
        context.setdefault("choices", service.form_choices(current_account()))
    return context


def _page(contact: Contact, status: int = 200, **overrides: Any) -> ResponseReturnValue:
    """The whole profile page (no-JavaScript forms land here too)."""
    context = _context(contact, **overrides)
    context["page"] = service.timeline(current_viewer(), contact.id, _before_arg())
    context["assignees"] = assignable_users(current_viewer())
    return render(PAGE, **context), status


def _back_to_profile(contact_id: int) -> ResponseReturnValue:
    return redirect(url_for("contacts.show", contact_id=contact_id), code=303)


def _latest_entry(contact_id: int) -> HistoryEntry | None:
    page = service.timeline(current_viewer(), contact_id, limit=1)
    return page.entries[0] if page.entries else None


def _invalid(
    contact: Contact, block: str, overrides: dict[str, Any]
) -> ResponseReturnValue:
    """422: the form's block for htmx, else the whole profile, each showing
    the errors and what was typed (in `overrides`)."""
    if fragment_wanted():
        return render(PAGE, block, **_context(contact, **overrides)), 422
    return _page(contact, 422, **overrides)


@bp.get("/contacts/<int:contact_id>")
@require(*VIEW_PERMISSIONS)
def show(contact_id: int) -> ResponseReturnValue:
    return _page(_visible_or_404(contact_id))


@bp.get("/contacts/<int:contact_id>/timeline")
@require(*VIEW_PERMISSIONS)
def timeline(contact_id: int) -> ResponseReturnValue:
    """Older entries (`before`) for the "older" link, or the first page with
    a fresh status block after the owner changed."""
    contact = _visible_or_404(contact_id)
    if not fragment_wanted():
        return _page(contact)
    before = _before_arg()
    page = service.timeline(current_viewer(), contact.id, before)
    block = "entries" if before else "timeline_refresh"
    return render(PAGE, block, page=page, **_context(contact))


@bp.post("/contacts/<int:contact_id>/history")
@require(*VIEW_PERMISSIONS)
def add_history(contact_id: int) -> ResponseReturnValue:
    """A note or call; htmx gets a fresh form, the entry to prepend, and the
    status block when this attended the contact."""
    contact = _visible_or_404(contact_id)
    status_before = contact.status
    kind, body = forms.history_from_form(request.form)
    try:
        entry = service.add_history(current_viewer(), contact.id, kind, body)
    except NotFound:
        abort(404)
    except ValidationError as exc:
        overrides = {
            "history_values": {"kind": kind, "body": body},
            "history_errors": exc.fields,
        }
        return _invalid(contact, "history_form", overrides)
    if not fragment_wanted():
        return _back_to_profile(contact.id)
    return render(
        PAGE,
        "history_added",
        entry=entry,
        status_changed=contact.status != status_before,
        **_context(contact),
    )


@bp.post("/contacts/<int:contact_id>/status")
@require(*VIEW_PERMISSIONS)
def change_status(contact_id: int) -> ResponseReturnValue:
    """Won and lost need a reason; htmx gets the status block and the new
    timeline entry."""
    contact = _visible_or_404(contact_id)
    _changeable_or_403(contact)
    status_before = contact.status
    status, reason, errors = forms.status_from_form(request.form)
    try:
        if errors:
            raise ValidationError(errors)
        service.set_status(current_viewer(), contact.id, status, reason)
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except ValidationError as exc:
        overrides = {
            "status_values": {"status": status, "reason": reason},
            "status_errors": exc.fields,
        }
        return _invalid(contact, "status", overrides)
    if not fragment_wanted():
        return _back_to_profile(contact.id)
    changed = contact.status != status_before
    return render(
        PAGE,
        "status_changed",
        entry=_latest_entry(contact.id) if changed else None,
        **_context(contact),
    )


@bp.get("/contacts/<int:contact_id>/details")
@require(*VIEW_PERMISSIONS)
def details(contact_id: int) -> ResponseReturnValue:
    """The details block at rest (the edit form's "Cancel")."""
    contact = _visible_or_404(contact_id)
    if not fragment_wanted():
        return _back_to_profile(contact.id)
    return render(PAGE, "details", **_context(contact))


@bp.get("/contacts/<int:contact_id>/edit")
@require(*VIEW_PERMISSIONS)
def edit(contact_id: int) -> ResponseReturnValue:
    """The details block as a form (the whole page without htmx)."""
    contact = _visible_or_404(contact_id)
    _changeable_or_403(contact)
    if fragment_wanted():
        return render(PAGE, "details", **_context(contact, editing=True))
    return _page(contact, editing=True)


@bp.post("/contacts/<int:contact_id>/edit")
@require(*VIEW_PERMISSIONS)
def update(contact_id: int) -> ResponseReturnValue:
    """Save the details; htmx gets the details block, the new timeline entry,
    the heading, and the status block when this attended the contact."""
    contact = _visible_or_404(contact_id)
    _changeable_or_403(contact)
    status_before = contact.status
    data, errors = forms.contact_input_from_form(request.form, with_custom=True)
    try:
        if errors:
            raise ValidationError(errors)
        service.update_contact(current_viewer(), contact.id, data)
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except ValidationError as exc:
        overrides = {
            "editing": True,
            "details_values": forms.values_from_form(request.form),
            "details_errors": exc.fields,
        }
        return _invalid(contact, "details", overrides)
    if not fragment_wanted():
        return _back_to_profile(contact.id)
    return render(
        PAGE,
        "details_saved",
        entry=_latest_entry(contact.id),
        status_changed=contact.status != status_before,
        **_context(contact),
    )


@bp.get("/contacts/<int:contact_id>/leads")
@require(*VIEW_PERMISSIONS)
def leads(contact_id: int) -> ResponseReturnValue:
    """The Leads section (loaded after the page, and again when the owner
    changes), or its older leads (`leads_before`, apart from the timeline's
    `before`); without htmx, the whole profile with the section filled in.
    404 when the viewer may not see the contact, like every other
    fragment."""
    before = _before_arg("leads_before")
    try:
        page = contact_leads(current_viewer(), contact_id, before)
    except NotFound:
        abort(404)
    if not fragment_wanted():
        return _page(page.contact, leads=page)
    block = "lead_items" if before else "leads"
    return render(PAGE, block, leads=page, **_context(page.contact))


# --- Creation ---


def _new_context(**overrides: Any) -> dict[str, Any]:
    viewer = current_viewer()
    context = {
        "choices": service.form_choices(current_account()),
        # Only those who assign pick an owner; the others own what they
        # create (or, without contact access, leave it for a manager).
        "owners": [u for u in assignable_users(viewer) if scope.may_own(u)]
        if viewer.can("contacts.assign")
        else None,
        "creator_may_own": scope.may_own(viewer),
        "values": forms.empty_values(),
        "errors": {},
        "matches": [],
        "confirm_needed": False,
    }
    context.update(overrides)
    return context


@bp.get("/contacts/new")
@require("contacts.create")
def new() -> ResponseReturnValue:
    return render(NEW_PAGE, **_new_context())


@bp.post("/contacts/new")
@require("contacts.create")
def create() -> ResponseReturnValue:
    """Create after the match check. A known phone or email re-renders the
    form (422) with the matches and a "create anyway" box to tick."""
    viewer = current_viewer()
    data, errors = forms.contact_input_from_form(
        request.form, with_owner=viewer.can("contacts.assign")
    )
    confirmed = request.form.get("create_anyway") == "1"
    try:
        if errors:
            raise ValidationError(errors)
        contact = service.create_checked(
            current_account(), viewer, data, confirmed=confirmed
        )
    except ValidationError as exc:
        return _create_refused(errors=exc.fields)
    except matching.PossibleDuplicate as exc:
        return _create_refused(matches=exc.matches, confirm_needed=True)
    try:
        scope.get_visible(viewer, contact.id)
    except NotFound:
        # Reception creates without owning: the contact waits for a manager
        # and is not theirs to open. Back to an empty form for the next one.
        flash(
            _("%(name)s was saved and waits for an owner.", name=contact.name),
            "success",
        )
        target = url_for("contacts.new")
    else:
        flash(_("%(name)s was saved.", name=contact.name), "success")
        target = url_for("contacts.show", contact_id=contact.id)
    if fragment_wanted():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def _create_refused(**overrides: Any) -> ResponseReturnValue:
    context = _new_context(values=forms.values_from_form(request.form), **overrides)
    if fragment_wanted():
        return render(NEW_PAGE, "form", **context), 422
    return render(NEW_PAGE, **context), 422


@bp.get("/contacts/matches")
@require("contacts.create")
def matches() -> ResponseReturnValue:
    """Existing contacts with the phone or email being typed: name and link
    when the viewer may see them, otherwise only whom to ask."""
    phone = request.args.get("phone", "")[:100]
    email = request.args.get("email", "")[:300]
    found = matching.match_check(current_viewer(), phone, email)
    if fragment_wanted():
        return render(NEW_PAGE, "matches", matches=found)
    values = forms.empty_values() | {"phone": phone, "email": email}
    return render(NEW_PAGE, **_new_context(values=values, matches=found))
