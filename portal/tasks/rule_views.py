"""The automatic task rules page (/tasks/rules, task_rules.manage): the
rules in order, a form to compose one, pause, resume and delete."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.auth.access import require
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import (
    Campaign,
    ContactStatus,
    Department,
    Origin,
    Team,
    User,
    UserStatus,
)
from portal.models.task import TaskRule
from portal.rendering import render
from portal.settings.service import current_account
from portal.tasks import rules

bp = Blueprint("task_rules", __name__)

TEMPLATE = "tasks/rules.html"
PERMISSION = "task_rules.manage"


def _named(model: type, account_id: int) -> list:
    query = select(model).where(model.account_id == account_id).order_by(model.name)
    if model is User:
        query = query.where(User.status == UserStatus.ACTIVE)
    return list(db.session.scalars(query))


def _context(form: rules.RuleForm | None = None, errors: dict | None = None) -> dict:
    account = current_account()
    choices = {
        "departments": _named(Department, account.id),
        "campaigns": _named(Campaign, account.id),
        "teams": _named(Team, account.id),
        "users": _named(User, account.id),
    }
    names = {
        "departments": {d.id: d.name for d in choices["departments"]},
        "campaigns": {c.id: c.name for c in choices["campaigns"]},
        "teams": {t.id: t.name for t in choices["teams"]},
        "users": {u.id: u.name for u in choices["users"]},
    }
    return {
        "rules": rules.list_rules(account),
        "form": form or rules.RuleForm(),
        "errors": errors or {},
        "events": rules.EVENTS,
        "conditions": rules.CONDITIONS,
        "assignees": rules.ASSIGNEES,
        "origins": list(Origin),
        "statuses": list(ContactStatus),
        "choices": choices,
        "names": names,
    }


@bp.get("/tasks/rules")
@require(PERMISSION)
def index() -> ResponseReturnValue:
    return render(TEMPLATE, **_context())


@bp.post("/tasks/rules")
@require(PERMISSION)
def create() -> ResponseReturnValue:
    form = rules.RuleForm.from_mapping(request.form)
    try:
        rules.create_rule(current_account(), current_user, form)
    except ValidationError as exc:
        return render(TEMPLATE, **_context(form, exc.fields)), 422
    flash(_("The rule is on."), "success")
    return redirect(url_for("task_rules.index"), code=303)


def _rule(rule_id: int) -> TaskRule:
    try:
        return rules.get_rule(current_account(), rule_id)
    except NotFound:
        abort(404)


@bp.post("/tasks/rules/<int:rule_id>/active")
@require(PERMISSION)
def set_active(rule_id: int) -> ResponseReturnValue:
    rule = _rule(rule_id)
    rules.set_active(rule, request.form.get("active") == "1")
    flash(_("The rule is on.") if rule.active else _("The rule is paused."), "success")
    return redirect(url_for("task_rules.index"), code=303)


@bp.post("/tasks/rules/<int:rule_id>/delete")
@require(PERMISSION)
def delete(rule_id: int) -> ResponseReturnValue:
    rules.delete_rule(_rule(rule_id))
    flash(_("The rule was deleted; the tasks it gave stay."), "success")
    return redirect(url_for("task_rules.index"), code=303)
