"""The contact list and the assignment endpoints (CONTRACT: /contacts,
POST /contacts/<id>/assign)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from portal.auth.access import require
from portal.contacts import service
from portal.contacts.scope import assignable_users_clause
from portal.errors import Conflict, Forbidden, NotFound
from portal.extensions import db
from portal.models import User
from portal.navigation import CONTACT_VIEW_PERMISSIONS
from portal.rendering import render

bp = Blueprint("contacts", __name__)

VIEW_PERMISSIONS = CONTACT_VIEW_PERMISSIONS


@bp.get("/contacts")
@require(*VIEW_PERMISSIONS)
def index():
    return render_template("contacts/index.html")


def assignable_users(user: User) -> list[User]:
    """Whom `user` may pick in an assign control (themself when an agent)."""
    return list(
        db.session.scalars(
            select(User).where(assignable_users_clause(user)).order_by(User.name)
        )
    )


def _owner_fragment(contact, status: int = 200, error: str | None = None):
    html = render(
        "contacts/_owner.html",
        contact=contact,
        assignees=assignable_users(current_user),
        error=error,
    )
    return html, status


@bp.post("/contacts/<int:contact_id>/assign")
@require("contacts.claim", "contacts.assign")
def assign(contact_id: int):
    """Take (empty user_id) or give the contact; answers the owner component."""
    to_user_id = request.form.get("user_id") or None
    try:
        contact = service.assign(current_user, contact_id, to_user_id)
    except NotFound:
        return _not_found()
    except Forbidden as exc:
        return _refused(contact_id, 403, str(exc))
    except Conflict as exc:
        return _refused(contact_id, 409, str(exc))
    if not request.htmx:
        return redirect(request.referrer or url_for("contacts.index"), code=303)
    return _owner_fragment(contact)


def _not_found():
    from flask import abort

    abort(404)


def _refused(contact_id: int, status: int, message: str):
    """The owner component as it is now, with why the change was refused."""
    from portal.models import Contact

    contact = db.session.get(Contact, contact_id)
    db.session.refresh(contact)
    return _owner_fragment(contact, status, message)
