"""`POST /contacts/<id>/comments` and the mention autocomplete
(CONTRACT: Working together).

Both answer 404 when the viewer may not see the contact. htmx gets named
blocks of contacts/comment.html: after a comment, a fresh form with the new
timeline entry to prepend; on bad input (422), the form with its errors and
what was typed. Without htmx the comment redirects back to the profile
(303), and a refusal renders the comment page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue

from portal.auth.access import require
from portal.comments import service
from portal.comments.text import comment_html
from portal.contacts import scope
from portal.contacts.profile import profile_context
from portal.contacts.views import VIEW_PERMISSIONS, current_viewer, list_context
from portal.errors import NotFound, ValidationError
from portal.models import Contact, User
from portal.rendering import fragment_wanted, render

bp = Blueprint("comments", __name__)
bp.add_app_template_filter(comment_html, "comment_text")

PAGE = "contacts/comment.html"


def _visible_or_404(contact_id: int) -> Contact:
    try:
        return scope.get_visible(current_viewer(), contact_id)
    except NotFound:
        abort(404)


def _context(contact: Contact, **overrides: Any) -> dict[str, Any]:
    """The timeline's helpers (the contacts pages' own), and the form at rest."""
    context: dict[str, Any] = {
        **list_context(),
        **profile_context(),
        "contact": contact,
        "comment_values": {"body": ""},
        "comment_errors": {},
        "chosen": [],
        "options": [],
        "mention_q": "",
    }
    context.update(overrides)
    return context


@bp.post("/contacts/<int:contact_id>/comments")
@require(*VIEW_PERMISSIONS)
def add(contact_id: int) -> ResponseReturnValue:
    contact = _visible_or_404(contact_id)
    viewer = current_viewer()
    body = request.form.get("body", "")
    mention_ids = request.form.getlist("mention")
    try:
        entry = service.add_comment(viewer, contact.id, body, mention_ids)
    except NotFound:
        abort(404)
    except ValidationError as exc:
        chosen = service.chosen_users(viewer, mention_ids)
        context = _context(
            contact,
            comment_values={"body": body},
            comment_errors=exc.fields,
            chosen=chosen,
        )
        if fragment_wanted():
            return render(PAGE, "comment_form", **context), 422
        return render(PAGE, **context), 422
    if not fragment_wanted():
        return redirect(url_for("contacts.show", contact_id=contact.id), code=303)
    return render(PAGE, "comment_added", entry=entry, **_context(contact))


@bp.get("/contacts/<int:contact_id>/mentions")
@require(*VIEW_PERMISSIONS)
def mention_options(contact_id: int) -> ResponseReturnValue:
    """The people the viewer may mention whose name holds `mention_q`, after
    those already ticked (`mention`, kept ticked)."""
    contact = _visible_or_404(contact_id)
    viewer = current_viewer()
    chosen: list[User] = [
        user
        for user in service.chosen_users(viewer, request.args.getlist("mention"))
        if service.sees_contact(user, contact.id)
    ]
    options = service.mention_options(
        viewer, contact, request.args.get("mention_q", ""), chosen
    )
    context = _context(
        contact,
        chosen=chosen,
        options=options,
        mention_q=request.args.get("mention_q", "")[:100],
    )
    if fragment_wanted():
        return render(PAGE, "mention_options", **context)
    return render(PAGE, **context)
