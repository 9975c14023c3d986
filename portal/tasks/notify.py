"""Telling people about tasks: when one is given to them (or their team)
and when it falls due. Run by RQ jobs after the commit; each notification
has its own dedupe key, so a job run twice tells once."""

from __future__ import annotations

from collections.abc import Iterable

from blinker import Namespace
from flask import current_app
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Notification, TeamMember, User, UserStatus
from portal.models.base import utcnow
from portal.models.task import Task
from portal.notifications.service import add_once

KIND_GIVEN = "task_given"
KIND_DUE = "task_due"

# Sent after a commit that changed whose tasks are what (given, taken, done,
# due), with the ids of the people whose lists moved; the home page listens.
tasks_changed = Namespace().signal("tasks-changed")


def announce(user_ids: Iterable[int | None]) -> None:
    ids = {uid for uid in user_ids if uid}
    if ids:
        tasks_changed.send(current_app._get_current_object(), user_ids=ids)  # type: ignore[attr-defined]


def recipients_of_team(task: Task) -> list[int]:
    """Every active member of the task's team."""
    if task.team_id is None:
        return []
    return list(
        db.session.scalars(
            select(TeamMember.user_id)
            .join(User, User.id == TeamMember.user_id)
            .where(TeamMember.team_id == task.team_id, User.status == UserStatus.ACTIVE)
        )
    )


def recipients(task: Task, *, skip: int | None = None) -> list[int]:
    """Who the task is for now: its assignee, or every active member of its
    team while nobody took it."""
    ids = (
        [task.assignee_id] if task.assignee_id is not None else recipients_of_team(task)
    )
    return [user_id for user_id in ids if user_id != skip]


def _tell(task: Task, user_id: int, kind: str) -> bool:
    """One notification per (task, person, kind); False when it exists."""
    made = add_once(
        Notification(
            account_id=task.account_id,
            user_id=user_id,
            kind=kind,
            data={"task_id": task.id, "title": task.title},
            url=f"/tasks#task-{task.id}",
            dedupe_key=f"{kind}:{task.id}:{user_id}",
        )
    )
    return made is not None


def notify_given(task_id: int) -> int:
    """Tell the person (or the team) the task is for; not its giver."""
    task = db.session.get(Task, task_id)
    if task is None or task.done_at is not None:
        return 0
    people = recipients(task, skip=task.created_by_id)
    told = sum(_tell(task, uid, KIND_GIVEN) for uid in people)
    announce(people)
    return told


def notify_due(task_id: int) -> int:
    """Tell that the task is due, once: the first run to flip `due_notified`
    tells; a done task, or one not due yet, tells nobody."""
    won = db.session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.due_notified.is_(False),
            Task.done_at.is_(None),
            Task.due_at <= utcnow(),
        )
        .values(due_notified=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not won:
        return 0
    task = db.session.get(Task, task_id)
    people = recipients(task)
    told = sum(_tell(task, uid, KIND_DUE) for uid in people)
    announce(people)
    return told


def sweep_due(limit: int = 500) -> int:
    """The safety net for a lost due job (Redis emptied, a worker gone at
    the moment): every task past due that nobody was told about yet."""
    ids = db.session.scalars(
        select(Task.id)
        .where(
            Task.due_notified.is_(False),
            Task.done_at.is_(None),
            Task.due_at <= utcnow(),
        )
        .order_by(Task.due_at)
        .limit(limit)
    ).all()
    return sum(notify_due(task_id) for task_id in ids)
