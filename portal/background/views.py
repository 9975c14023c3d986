"""The admins' jobs page (/admin/jobs): every background job of the last
days, RQ's view of them and the workers alive; Resume and Cancel.

Other roles get 404: the page is not theirs to know of. The board is one
block of the page, which polls itself every few seconds and is what Resume
and Cancel answer with (an htmx swap keeps the filters).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _

from portal.auth.access import require
from portal.background import board, runs
from portal.errors import Conflict, NotFound
from portal.errors_http import error_response
from portal.models import BackgroundJob, JobStatus
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account

bp = Blueprint("jobs_admin", __name__)

TEMPLATE = "background/jobs.html"
PERMISSION = "jobs.manage"
REFRESH_SECONDS = 2


@bp.context_processor
def dates() -> dict:
    return {"when": lambda moment: format_datetime(moment, "short") if moment else ""}


def _filters(values: dict) -> tuple[dict[str, str], dict[str, str]]:
    """The list's filters from the query string (or an action's form), and
    a message per filter that names nothing known."""
    chosen = {"status": values.get("status", ""), "kind": values.get("kind", "")}
    errors = {}
    if chosen["status"] and chosen["status"] not in set(JobStatus):
        errors["status"] = _("There is no such status.")
    if chosen["kind"] and chosen["kind"] not in dict(board.kind_choices()):
        errors["kind"] = _("There is no such kind of job.")
    return chosen, errors


def _context(chosen: dict[str, str], errors: dict[str, str]) -> dict:
    account_id = current_account().id
    shown = {key: value for key, value in chosen.items() if key not in errors}
    return {
        "rows": board.recent_jobs(
            account_id, status=shown.get("status"), kind=shown.get("kind")
        ),
        "counts": board.status_counts(account_id),
        "rq": board.rq_counts(account_id),
        "workers": board.workers(account_id),
        "filters": chosen,
        "errors": errors,
        "statuses": [(str(s), runs.status_label(s)) for s in JobStatus],
        "kinds": board.kind_choices(),
        "recent_days": board.RECENT_DAYS,
        "refresh_seconds": REFRESH_SECONDS,
    }


@bp.get("/jobs")
@require(PERMISSION, hidden=True)
def index() -> ResponseReturnValue:
    chosen, errors = _filters(request.args)
    context = _context(chosen, errors)
    status = 422 if errors else 200
    if fragment_wanted():
        return render(TEMPLATE, "board", **context), status
    return render(TEMPLATE, **context), status


def _job(job_id: int) -> BackgroundJob:
    try:
        return board.get_job(current_account().id, job_id)
    except NotFound:
        abort(404)


def _after_action(message: str) -> ResponseReturnValue:
    chosen, errors = _filters(request.form)
    if request.htmx:
        return render(TEMPLATE, "board", notice=message, **_context(chosen, errors))
    flash(message, "success")
    return redirect(url_for("jobs_admin.index", **chosen), code=303)


@bp.post("/jobs/<int:job_id>/resume")
@require(PERMISSION, hidden=True)
def resume(job_id: int) -> ResponseReturnValue:
    job = _job(job_id)
    try:
        runs.resume(job)
    except Conflict as exc:
        return error_response(409, str(exc))
    return _after_action(_("The job goes on from where it stopped."))


@bp.post("/jobs/<int:job_id>/cancel")
@require(PERMISSION, hidden=True)
def cancel(job_id: int) -> ResponseReturnValue:
    job = _job(job_id)
    try:
        status = runs.cancel(job)
    except Conflict as exc:
        return error_response(409, str(exc))
    if status == JobStatus.CANCELLED:
        message = _("The job was cancelled before it started.")
    else:
        message = _("The job stops after the batch it is on; what it did so far stays.")
    return _after_action(message)
