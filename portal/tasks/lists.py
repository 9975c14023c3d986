"""The "my tasks" page's lists: overdue and due today first.

Each row carries what the page shows (contact, team, who gave it) from one
query per list, with the labels worked out here rather than per row in the
template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.localtime import day_bounds, zone_of
from portal.models import Contact, Team, User
from portal.models.base import utcnow
from portal.models.task import Task
from portal.tasks.service import may_finish, team_ids_of

DONE_DAYS = 7
LIST_LIMIT = 100


@dataclass(frozen=True)
class TaskRow:
    task: Task
    contact_name: str | None
    team_name: str | None
    giver_name: str | None
    assignee_name: str | None
    overdue: bool
    can_take: bool
    can_finish: bool


@dataclass
class MyTasks:
    overdue: list[TaskRow] = field(default_factory=list)
    today: list[TaskRow] = field(default_factory=list)
    later: list[TaskRow] = field(default_factory=list)
    undated: list[TaskRow] = field(default_factory=list)
    team: list[TaskRow] = field(default_factory=list)
    given: list[TaskRow] = field(default_factory=list)
    done: list[TaskRow] = field(default_factory=list)

    @property
    def open_count(self) -> int:
        return len(self.overdue) + len(self.today) + len(self.later) + len(self.undated)


_giver = aliased(User)
_assignee = aliased(User)


def _rows(user: User, query: Select, now: datetime) -> list[TaskRow]:
    query = (
        query.add_columns(Contact.name, Team.name, _giver.name, _assignee.name)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(Team, Team.id == Task.team_id)
        .outerjoin(_giver, _giver.id == Task.created_by_id)
        .outerjoin(_assignee, _assignee.id == Task.assignee_id)
        .limit(LIST_LIMIT)
    )
    rows = []
    for task, contact, team, giver, assignee in db.session.execute(query):
        rows.append(
            TaskRow(
                task=task,
                contact_name=contact,
                team_name=team,
                giver_name=giver,
                assignee_name=assignee,
                overdue=bool(
                    task.done_at is None and task.due_at and task.due_at < now
                ),
                can_take=task.assignee_id is None and task.done_at is None,
                can_finish=may_finish(user, task),
            )
        )
    return rows


def my_tasks(user: User, now: datetime | None = None) -> MyTasks:
    now = now or utcnow()
    _start, end_of_day = day_bounds(now, zone_of(user))
    base = select(Task).where(Task.account_id == user.account_id)
    mine = base.where(Task.assignee_id == user.id, Task.done_at.is_(None))
    by_due = (Task.due_at, Task.id)
    return MyTasks(
        overdue=_rows(user, mine.where(Task.due_at < now).order_by(*by_due), now),
        today=_rows(
            user,
            mine.where(Task.due_at >= now, Task.due_at < end_of_day).order_by(*by_due),
            now,
        ),
        later=_rows(user, mine.where(Task.due_at >= end_of_day).order_by(*by_due), now),
        undated=_rows(user, mine.where(Task.due_at.is_(None)).order_by(Task.id), now),
        team=_rows(
            user,
            base.where(
                Task.assignee_id.is_(None),
                Task.team_id.in_(team_ids_of(user)),
                Task.done_at.is_(None),
            ).order_by(Task.due_at.is_(None), *by_due),
            now,
        ),
        given=_rows(
            user,
            base.where(
                Task.created_by_id == user.id,
                (Task.assignee_id != user.id) | Task.assignee_id.is_(None),
                Task.done_at.is_(None),
            ).order_by(Task.due_at.is_(None), *by_due),
            now,
        ),
        done=_rows(
            user,
            base.where(
                Task.assignee_id == user.id,
                Task.done_at >= now - timedelta(days=DONE_DAYS),
            ).order_by(Task.done_at.desc()),
            now,
        ),
    )


def contact_tasks(
    user: User, contact_id: int, now: datetime | None = None
) -> list[TaskRow]:
    """The open and recent tasks on a contact the user sees (the profile
    shows them beside its timeline)."""
    now = now or utcnow()
    query = (
        select(Task)
        .where(Task.account_id == user.account_id, Task.contact_id == contact_id)
        .order_by(
            Task.done_at.is_not(None), Task.due_at.is_(None), Task.due_at, Task.id
        )
    )
    return _rows(user, query, now)
