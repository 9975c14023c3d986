"""Composing automatic task rules: "when <event>, give <task> to
<assignee> (due in N hours)". Every field is checked and named on error;
nothing half-written stays. The rules at work are portal.tasks.firing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import (
    Account,
    Campaign,
    ContactStatus,
    Department,
    Origin,
    Team,
    User,
    UserStatus,
)
from portal.models.task import TITLE_MAX, TaskRule
from portal.tasks.service import FormFields

EVENTS = {
    "lead_created": _l("A lead arrives"),
    "status_changed": _l("A contact's status changes"),
    "offer_expired": _l("An offer runs out"),
    "contact_assigned": _l("A contact gets an owner"),
    "no_activity": _l("A contact has had no activity for some days"),
}
# Which conditions each event takes.
CONDITIONS = {
    "lead_created": ("origin", "department_id", "campaign_id"),
    "status_changed": ("status",),
    "offer_expired": ("department_id",),
    "contact_assigned": (),
    "no_activity": ("days",),
}
ASSIGNEES = {
    "owner": _l("The contact's owner"),
    "owner_lead": _l("The owner's coordinator or manager"),
}
MAX_DAYS = 365
MAX_DUE_HOURS = 24 * 365


@dataclass
class RuleForm(FormFields):
    event: str = ""
    origin: str = ""
    department_id: str = ""
    campaign_id: str = ""
    status: str = ""
    days: str = ""
    title: str = ""
    due_hours: str = ""
    assignee: str = "owner"


def _whole(value: str, low: int, high: int) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def _account_row(model: type, raw: str, account: Account) -> int | None | bool:
    """The id when it names a row of the account, None when empty, False
    when it names nothing."""
    if not raw:
        return None
    row_id = _whole(raw, 1, 2**31 - 1)
    row = db.session.get(model, row_id) if row_id else None
    return row.id if row is not None and row.account_id == account.id else False


def _conditions(account: Account, form: RuleForm, errors: dict) -> dict:
    wanted = CONDITIONS.get(form.event, ())
    conditions: dict = {}
    if "origin" in wanted and form.origin:
        if form.origin in set(Origin):
            conditions["origin"] = form.origin
        else:
            errors["origin"] = _("Pick from the list.")
    for name, model in (("department_id", Department), ("campaign_id", Campaign)):
        if name in wanted:
            found = _account_row(model, getattr(form, name), account)
            if found is False:
                errors[name] = _("Pick from the list.")
            elif found is not None:
                conditions[name] = found
    if "status" in wanted:
        if form.status in set(ContactStatus):
            conditions["status"] = form.status
        else:
            errors["status"] = _("Pick the status that sets the rule off.")
    if "days" in wanted:
        days = _whole(form.days, 1, MAX_DAYS)
        if days is None:
            errors["days"] = _(
                "Enter a whole number of days from 1 to %(n)d.", n=MAX_DAYS
            )
        else:
            conditions["days"] = days
    return conditions


def _assignee(account: Account, value: str, errors: dict) -> tuple[str, int | None]:
    if value in ASSIGNEES:
        return value, None
    kind, _sep, raw = value.partition(":")
    if kind == "user":
        user_id = _whole(raw, 1, 2**31 - 1)
        user = db.session.get(User, user_id) if user_id else None
        if user and user.account_id == account.id and user.status == UserStatus.ACTIVE:
            return "user", user.id
    elif kind == "team":
        found = _account_row(Team, raw, account)
        if found:
            return "team", found
    errors["assignee"] = _("Pick from the list.")
    return "", None


def create_rule(account: Account, actor: User, form: RuleForm) -> TaskRule:
    errors: dict[str, str] = {}
    if form.event not in EVENTS:
        errors["event"] = _("Pick the event that sets the rule off.")
    conditions = _conditions(account, form, errors)
    if not form.title:
        errors["title"] = _("Give the task a title.")
    elif len(form.title) > TITLE_MAX:
        errors["title"] = _("At most %(n)d characters.", n=TITLE_MAX)
    due_hours = None
    if form.due_hours:
        due_hours = _whole(form.due_hours, 0, MAX_DUE_HOURS)
        if due_hours is None:
            errors["due_hours"] = _(
                "Enter a whole number of hours from 0 to %(n)d.", n=MAX_DUE_HOURS
            )
    assignee, assignee_id = _assignee(account, form.assignee, errors)
    if errors:
        raise ValidationError(errors)
    rule = TaskRule(
        account_id=account.id,
        event=form.event,
        conditions=conditions,
        title=form.title,
        due_hours=due_hours,
        assignee=assignee,
        assignee_id=assignee_id,
        created_by_id=actor.id,
    )
    db.session.add(rule)
    db.session.commit()
    _changed()
    return rule


def list_rules(account: Account) -> list[TaskRule]:
    return list(
        db.session.scalars(
            select(TaskRule)
            .where(TaskRule.account_id == account.id)
            .order_by(TaskRule.id)
        )
    )


def get_rule(account: Account, rule_id: int) -> TaskRule:
    rule = db.session.get(TaskRule, rule_id)
    if rule is None or rule.account_id != account.id:
        raise NotFound()
    return rule


def set_active(rule: TaskRule, active: bool) -> None:
    rule.active = active
    db.session.commit()
    _changed()


def delete_rule(rule: TaskRule) -> None:
    db.session.delete(rule)
    db.session.commit()
    _changed()


# Whether an account has an active rule for an event, kept LISTEN_SECONDS
# per process: every lead and every offer asks, and a flood of them should
# not each cost a query. A change here forgets it at once; other processes
# hear of a new rule within LISTEN_SECONDS.
LISTEN_SECONDS = 5.0
_listening: dict[tuple[int, str], tuple[float, bool]] = {}


def any_active(account_id: int, event: str) -> bool:
    """Whether an event of this kind needs a job at all (most accounts have
    no rule for most events: no job is queued for them)."""
    now = time.monotonic()
    known = _listening.get((account_id, event))
    if known is not None and now - known[0] < LISTEN_SECONDS:
        return known[1]
    answer = bool(
        db.session.scalar(
            select(TaskRule.id)
            .where(
                TaskRule.account_id == account_id,
                TaskRule.event == event,
                TaskRule.active.is_(True),
            )
            .limit(1)
        )
    )
    _listening[(account_id, event)] = (now, answer)
    return answer


def _changed() -> None:
    _listening.clear()
