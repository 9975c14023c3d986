"""Admin pages for users: the list, creation, inline edit, suspension and
activation links. Every view needs "users.manage"; another account's user or
an unknown id answers 404.

htmx requests get fragments (rows, a row, the create form); the same URLs
without htmx render whole pages or redirect back to the list (303).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from portal.auth.access import require
from portal.errors import NotFound, ValidationError
from portal.models import User
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account
from portal.users import forms, service

bp = Blueprint("users", __name__)

INDEX = "users/index.html"
ROW_EDIT = "users/_edit_row.html"
EDIT_PAGE = "users/edit.html"


@bp.context_processor
def users_context() -> dict:
    # Prepared once per page: a list renders these for each of 100 rows, and
    # per-row gettext/url_for calls were most of its rendering time.
    return {
        "user_status": service.display_status,
        "outbox_mode": service.outbox_mode(),
        "users_url": url_for("users.index"),
        "csrf": generate_csrf(),
        "text": _row_text(),
        "may_view_as": current_user.can("users.view_as"),
    }


def _row_text() -> dict[str, str]:
    return {
        "name": _("Name"),
        "email": _("Email"),
        "role": _("Role"),
        "structure": _("Teams, units, departments"),
        "status": _("Status"),
        "active": _("Active"),
        "suspended": _("Suspended"),
        "pending": _("Pending activation"),
        "edit": _("Edit"),
        "suspend": _("Suspend"),
        "delete": _("Delete"),
        "view_as": _("View as"),
        "confirm_suspend": _("Suspend %(name)s? They are signed out at once."),
        "reactivate": _("Reactivate"),
        "resend": _("Resend activation"),
        "show_link": _("Show link"),
        "link": _("Activation link"),
    }


def _user_or_404(user_id: int) -> User:
    try:
        return service.get_user(current_account(), user_id)
    except NotFound:
        abort(404)


def _acting_user() -> User:
    return current_user._get_current_object()


def _back_to_list(message: str, category: str = "success") -> ResponseReturnValue:
    flash(message, category)
    return redirect(url_for("users.index"), code=303)


def _row_changed(user: User, message: str) -> ResponseReturnValue:
    """The fresh row plus a flash for htmx; a redirect with a flash otherwise."""
    if fragment_wanted():
        return render(INDEX, "row_updated", user=user, message=message)
    return _back_to_list(message)


def _row_refused(user: User, exc: ValidationError) -> ResponseReturnValue:
    """The row with the reason beside its actions (422), or a flash."""
    message = " ".join(exc.fields.values())
    if fragment_wanted():
        return render(INDEX, "row_updated", user=user, row_error=message), 422
    return _back_to_list(message, "error")


@bp.get("/users")
@require("users.manage")
def index() -> ResponseReturnValue:
    account = current_account()
    filters = forms.filters_from_args(request.args)
    page = service.list_users(account, filters)
    if fragment_wanted():
        return render(INDEX, "rows", page=page, filters=filters)
    return render(
        INDEX,
        page=page,
        filters=filters,
        choices=service.form_choices(account),
        values=forms.empty_values(),
        errors={},
    )


@bp.post("/users")
@require("users.manage")
def create() -> ResponseReturnValue:
    account = current_account()
    data, errors = forms.user_input_from_form(request.form, with_password=True)
    try:
        if errors:
            raise ValidationError(errors)
        user = service.create_user(account, data)
    except ValidationError as exc:
        context = {
            "choices": service.form_choices(account),
            "values": forms.values_from_form(request.form),
            "errors": exc.fields,
            "form_open": True,
        }
        if fragment_wanted():
            return render(INDEX, "create_form", **context), 422
        filters = forms.filters_from_args({})
        page = service.list_users(account, filters)
        return render(INDEX, page=page, filters=filters, **context), 422
    if user.activated_at is None:
        message = _(
            "%(name)s was added. The activation link was mailed to %(email)s.",
            name=user.name,
            email=user.email,
        )
    else:
        message = _("%(name)s was added.", name=user.name)
    if fragment_wanted():
        return render(
            INDEX,
            "created",
            user=user,
            message=message,
            choices=service.form_choices(account),
            values=forms.empty_values(),
            errors={},
            form_open=True,
        )
    return _back_to_list(message)


@bp.get("/users/<int:user_id>/row")
@require("users.manage")
def row(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    if fragment_wanted():
        return render(INDEX, "row_updated", user=user)
    return redirect(url_for("users.index"), code=303)


@bp.get("/users/<int:user_id>/edit")
@require("users.manage")
def edit(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    context = {
        "user": user,
        "choices": service.form_choices(current_account()),
        "values": forms.values_for_user(user),
        "errors": {},
    }
    return render(ROW_EDIT if fragment_wanted() else EDIT_PAGE, **context)


@bp.post("/users/<int:user_id>")
@require("users.manage")
def update(user_id: int) -> ResponseReturnValue:
    account = current_account()
    user = _user_or_404(user_id)
    data, errors = forms.user_input_from_form(request.form, with_password=False)
    try:
        if errors:
            raise ValidationError(errors)
        service.update_user(account, user, data, acting_user=_acting_user())
    except ValidationError as exc:
        context = {
            "user": user,
            "choices": service.form_choices(account),
            "values": forms.values_from_form(request.form),
            "errors": exc.fields,
        }
        return render(ROW_EDIT if fragment_wanted() else EDIT_PAGE, **context), 422
    return _row_changed(user, _("%(name)s was saved.", name=user.name))


@bp.post("/users/<int:user_id>/suspend")
@require("users.manage")
def suspend(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    try:
        service.suspend_user(user, acting_user=_acting_user())
    except ValidationError as exc:
        return _row_refused(user, exc)
    return _row_changed(
        user, _("%(name)s is suspended and signed out everywhere.", name=user.name)
    )


@bp.post("/users/<int:user_id>/reactivate")
@require("users.manage")
def reactivate(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    service.reactivate_user(user)
    return _row_changed(user, _("%(name)s can sign in again.", name=user.name))


@bp.post("/users/<int:user_id>/resend-activation")
@require("users.manage")
def resend_activation(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    try:
        service.resend_activation(user)
    except ValidationError as exc:
        return _row_refused(user, exc)
    return _row_changed(
        user,
        _(
            "A new activation link was mailed to %(email)s; the previous one "
            "no longer works.",
            email=user.email,
        ),
    )


@bp.get("/users/<int:user_id>/activation-link")
@require("users.manage")
def activation_link(user_id: int) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    try:
        link = service.current_activation_link(user)
    except NotFound:
        abort(404)
    if fragment_wanted():
        return render(INDEX, "row_updated", user=user, activation_link=link)
    return render("users/activation_link.html", user=user, activation_link=link)
