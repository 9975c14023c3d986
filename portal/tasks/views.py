"""The tasks pages: "my tasks" (GET /tasks), giving a task, taking a
team's, done and undo. Every signed-in user has tasks; whom they may give
one to is the service's rule."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.contacts import scope
from portal.errors import Conflict, NotFound, ValidationError
from portal.errors_http import error_response
from portal.localtime import zone_name_of
from portal.models.task import NOTES_MAX, TITLE_MAX, Task
from portal.rendering import fragment_wanted, render
from portal.tasks import lists, service

bp = Blueprint("tasks", __name__)

TEMPLATE = "tasks/index.html"


@bp.context_processor
def dates() -> dict:
    return {"when": lambda moment: format_datetime(moment, "short") if moment else ""}


def _context(form: service.TaskForm | None = None, errors: dict | None = None) -> dict:
    return {
        "lists": lists.my_tasks(current_user),
        "choices": service.choices(current_user),
        "form": form or service.TaskForm(assignee=f"user:{current_user.id}"),
        "errors": errors or {},
        "zone": zone_name_of(current_user),
        "title_max": TITLE_MAX,
        "notes_max": NOTES_MAX,
    }


@bp.get("/tasks")
@login_required
def index() -> ResponseReturnValue:
    context = _context(
        service.TaskForm(
            assignee=f"user:{current_user.id}",
            contact_id=request.args.get("contact_id", ""),
        )
    )
    if fragment_wanted():
        return render(TEMPLATE, "lists", **context)
    return render(TEMPLATE, **context)


@bp.post("/tasks")
@login_required
def create() -> ResponseReturnValue:
    form = service.TaskForm.from_mapping(request.form)
    try:
        task = service.create_task(current_user, form)
    except ValidationError as exc:
        context = _context(form, exc.fields)
        if request.htmx:
            return render(TEMPLATE, "create_form", **context), 422
        return render(TEMPLATE, **context), 422
    flash(_("Task “%(title)s” saved.", title=task.title), "success")
    return redirect(url_for("tasks.index") + f"#task-{task.id}", code=303)


@bp.get("/contacts/<int:contact_id>/tasks")
@login_required
def for_contact(contact_id: int) -> ResponseReturnValue:
    """The contact's tasks, for its profile (404 when the contact is not
    the viewer's to see)."""
    try:
        contact = scope.get_visible(current_user, contact_id)
    except NotFound:
        abort(404)
    return render(
        TEMPLATE,
        "contact_tasks",
        contact=contact,
        rows=lists.contact_tasks(current_user, contact.id),
    )


def _task(task_id: int) -> Task:
    try:
        return service.get_task(current_user, task_id)
    except NotFound:
        abort(404)


def _answer(message: str) -> ResponseReturnValue:
    if request.htmx:
        return render(TEMPLATE, "lists", notice=message, **_context())
    flash(message, "success")
    return redirect(url_for("tasks.index"), code=303)


def _act(
    task_id: int,
    action: Callable[[Task], object],
    message: Callable[[Task], str],
) -> ResponseReturnValue:
    """Do `action` to the viewer's task; 409 with why when it may not be."""
    task = _task(task_id)
    try:
        action(task)
    except Conflict as exc:
        return error_response(409, str(exc))
    return _answer(message(task))


@bp.post("/tasks/<int:task_id>/take")
@login_required
def take(task_id: int) -> ResponseReturnValue:
    return _act(
        task_id,
        lambda task: service.take(current_user, task),
        lambda task: _("The task is yours now."),
    )


@bp.post("/tasks/<int:task_id>/done")
@login_required
def done(task_id: int) -> ResponseReturnValue:
    return _act(
        task_id,
        lambda task: service.set_done(current_user, task, True),
        lambda task: _("Done: “%(title)s”.", title=task.title),
    )


@bp.post("/tasks/<int:task_id>/undo")
@login_required
def undo(task_id: int) -> ResponseReturnValue:
    return _act(
        task_id,
        lambda task: service.set_done(current_user, task, False),
        lambda task: _("“%(title)s” is open again.", title=task.title),
    )
