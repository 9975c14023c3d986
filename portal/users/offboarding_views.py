"""Deleting a user from the admin pages: the dialog that asks to whom
their contacts and tasks go, and the reassignment's own page, which follows
the background job until it ends (Resume and Cancel are the jobs page's)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from portal.auth.access import require
from portal.background import runs
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import Contact, JobKind, Team, User
from portal.models.task import Task
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account
from portal.users import offboarding, service

bp = Blueprint("offboarding", __name__)

TEMPLATE = "users/delete.html"
PROGRESS_TEMPLATE = "users/reassignment.html"
PERMISSION = "users.manage"


def _counts(user: User) -> dict[str, int]:
    return {
        "contacts": db.session.scalar(
            select(func.count()).select_from(Contact).where(Contact.owner_id == user.id)
        ),
        "tasks": db.session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.assignee_id == user.id, Task.done_at.is_(None))
        ),
    }


def _form_context(user: User, errors: dict | None = None) -> dict:
    account = current_account()
    people = db.session.scalars(
        select(User)
        .where(User.account_id == account.id, User.id != user.id)
        .order_by(User.name)
    ).all()
    heirs = [p for p in people if offboarding.may_inherit(account, user, p)]
    teams = db.session.scalars(
        select(Team).where(Team.account_id == account.id).order_by(Team.name)
    ).all()
    return {
        "user": user,
        "counts": _counts(user),
        "heirs": heirs,
        "teams": teams,
        "errors": errors or {},
        "chosen": request.form.get("to", ""),
    }


def _live_user(user_id: int) -> User:
    try:
        return service.get_user(current_account(), user_id)
    except NotFound:
        abort(404)


@bp.get("/users/<int:user_id>/delete")
@require(PERMISSION)
def form(user_id: int) -> ResponseReturnValue:
    return render(TEMPLATE, **_form_context(_live_user(user_id)))


@bp.post("/users/<int:user_id>/delete")
@require(PERMISSION)
def delete(user_id: int) -> ResponseReturnValue:
    user = _live_user(user_id)
    account = current_account()
    kind, _sep, raw = request.form.get("to", "").partition(":")
    to_user = to_team = None
    if raw.isdigit():
        if kind == "user":
            to_user = db.session.get(User, int(raw))
        elif kind == "team":
            to_team = db.session.get(Team, int(raw))
    if (to_user and to_user.account_id != account.id) or (
        to_team and to_team.account_id != account.id
    ):
        to_user = to_team = None
    try:
        offboarding.delete_user(
            account, user, to_user=to_user, to_team=to_team, acting_user=current_user
        )
    except ValidationError as exc:
        return render(TEMPLATE, **_form_context(user, exc.fields)), 422
    return redirect(url_for("offboarding.progress", user_id=user.id), code=303)


@bp.get("/users/<int:user_id>/reassignment")
@require(PERMISSION)
def progress(user_id: int) -> ResponseReturnValue:
    """The reassignment's own page: the same state as the jobs page."""
    account = current_account()
    user = db.session.get(User, user_id)
    job = runs.latest_for(JobKind.REASSIGN, user_id) if user else None
    if user is None or user.account_id != account.id or job is None:
        abort(404)
    context = {
        "user": user,
        "job": job,
        "status_label": runs.status_label(job.status),
        "reason": runs.reason_text(job),
        "finished": job.status not in ("queued", "running"),
    }
    if fragment_wanted():
        return render(PROGRESS_TEMPLATE, "progress", **context)
    return render(PROGRESS_TEMPLATE, **context)
