"""Tasks: giving one, seeing yours, taking a team's, marking it done.

Who may be given a task by whom follows the contacts' assignment scope
(`contacts.scope.assignable_users_clause`): anyone gives themselves one; a
coordinator or manager gives tasks to the people they lead; an admin to
anyone. A team task may go to a team one belongs to or leads (any team, for
who sees every contact). A task on a contact needs the contact visible to
its giver and to the person it is for. Taking, finishing and undoing are
conditional UPDATEs: two people acting at once get one winner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, update

from portal.contacts import scope
from portal.errors import Conflict, NotFound, ValidationError
from portal.extensions import db
from portal.localtime import parse_local, zone_of
from portal.models import Contact, Team, TeamMember, User
from portal.models.base import utcnow
from portal.models.task import NOTES_MAX, TITLE_MAX, Task
from portal.queue import enqueue, enqueue_at
from portal.tasks import notify


class FormFields:
    """A form as typed: each field of the dataclass, from a request's form
    (missing ones empty, surrounding spaces gone)."""

    @classmethod
    def from_mapping(cls, values: object) -> Self:
        get = values.get  # type: ignore[attr-defined]
        names = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{name: (get(name) or "").strip() for name in names})


@dataclass
class TaskForm(FormFields):
    title: str = ""
    notes: str = ""
    due_at: str = ""
    contact_id: str = ""
    assignee: str = ""


@dataclass
class Choices:
    users: list[User] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)


def team_ids_of(user: User) -> Select:
    return select(TeamMember.team_id).where(TeamMember.user_id == user.id)


def choices(actor: User) -> Choices:
    """Whom `actor` may give a task to."""
    users = db.session.scalars(
        select(User).where(scope.assignable_users_clause(actor)).order_by(User.name)
    ).all()
    teams = select(Team).where(Team.account_id == actor.account_id)
    if not scope.sees_everything(actor):
        teams = teams.where(Team.id.in_(team_ids_of(actor)))
    return Choices(
        users=list(users), teams=list(db.session.scalars(teams.order_by(Team.name)))
    )


def _assignee(actor: User, value: str, errors: dict) -> tuple[User | None, Team | None]:
    kind, _sep, raw = value.partition(":")
    try:
        wanted = int(raw)
    except ValueError:
        wanted = None
    options = choices(actor)
    if kind == "user" and wanted is not None:
        user = next((u for u in options.users if u.id == wanted), None)
        if user is not None:
            return user, None
    elif kind == "team" and wanted is not None:
        team = next((t for t in options.teams if t.id == wanted), None)
        if team is not None:
            return None, team
    errors["assignee"] = (
        _("Choose whom the task is for.")
        if not value
        else _("You may not give tasks to this person or team.")
    )
    return None, None


def _contact(actor: User, raw: str, errors: dict) -> Contact | None:
    if not raw.strip():
        return None
    try:
        return scope.get_visible(actor, raw.strip())
    except NotFound:
        errors["contact_id"] = _("There is no such contact, or you may not see it.")
        return None


def sees_contact(user: User, contact_id: int) -> bool:
    return bool(
        db.session.scalar(
            select(Contact.id).where(
                Contact.id == contact_id, scope.visible_clause(user)
            )
        )
    )


def create_task(actor: User, form: TaskForm) -> Task:
    """Validate every field (errors name them; nothing is written), save the
    task, and have the person or team told (after the commit)."""
    errors: dict[str, str] = {}
    title = form.title.strip()
    if not title:
        errors["title"] = _("Give the task a title.")
    elif len(title) > TITLE_MAX:
        errors["title"] = _("At most %(n)d characters.", n=TITLE_MAX)
    notes = form.notes.strip()
    if len(notes) > NOTES_MAX:
        errors["notes"] = _("At most %(n)d characters.", n=NOTES_MAX)
    due_at = None
    if form.due_at.strip():
        due_at = parse_local(form.due_at, zone_of(actor))
        if due_at is None:
            errors["due_at"] = _("Enter a date and time like 2026-12-31T17:30.")
    contact = _contact(actor, form.contact_id, errors)
    user, team = _assignee(actor, form.assignee.strip(), errors)
    if contact is not None and user is not None and not sees_contact(user, contact.id):
        errors["assignee"] = _(
            "%(name)s may not see this contact; choose someone who may.", name=user.name
        )
    if errors:
        raise ValidationError(errors)
    task = Task(
        account_id=actor.account_id,
        title=title,
        notes=notes,
        due_at=due_at,
        contact_id=contact.id if contact else None,
        assignee_id=user.id if user else None,
        team_id=team.id if team else None,
        created_by_id=actor.id,
    )
    give(task)
    return task


def give(task: Task, *with_it: object) -> None:
    """Save a new task (and the rows `with_it`, in the same transaction),
    then have its people told and its due time kept: the one way a task is
    given, by a person or by a rule."""
    now = utcnow()
    # Given already overdue: its giver knows; it shows as overdue.
    task.due_notified = task.due_at is not None and task.due_at <= now
    db.session.add(task)
    db.session.add_all(with_it)
    db.session.commit()
    enqueue("jobs.tasks.notify_given", task.id)
    if task.due_at is not None and task.due_at > now:
        enqueue_at(task.due_at, "jobs.tasks.notify_due", task.id)


def _visible_clause(user: User) -> ColumnElement[bool]:
    mine = or_(
        Task.assignee_id == user.id,
        Task.created_by_id == user.id,
        # A team's tasks stay visible to its members once taken, so the one
        # who comes second hears who took it (409), not "no such task".
        Task.team_id.in_(team_ids_of(user)),
    )
    if scope.sees_everything(user):
        return Task.account_id == user.account_id
    return and_(Task.account_id == user.account_id, mine)


def get_task(user: User, task_id: int) -> Task:
    """The task if `user` may see it (theirs, given by them, their team's;
    any, for who sees every contact), else NotFound."""
    task = db.session.scalar(
        select(Task).where(Task.id == task_id, _visible_clause(user))
    )
    if task is None:
        raise NotFound()
    return task


def may_finish(user: User, task: Task) -> bool:
    return (
        task.assignee_id == user.id
        or task.created_by_id == user.id
        or (scope.sees_everything(user))
    )


def take(user: User, task: Task) -> None:
    """A team member takes the team's task; Conflict naming who took it
    first."""
    member = exists().where(
        TeamMember.team_id == Task.team_id, TeamMember.user_id == user.id
    )
    won = db.session.execute(
        update(Task)
        .where(
            Task.id == task.id,
            Task.assignee_id.is_(None),
            Task.team_id.is_not(None),
            member,
        )
        .values(assignee_id=user.id, taken_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(task)
    if won:
        # The teammates' lists lose it.
        notify.announce(notify.recipients_of_team(task))
        return
    if task.assignee_id is not None:
        taker = db.session.get(User, task.assignee_id)
        raise Conflict(
            _("%(name)s took this task first.", name=taker.name if taker else "?")
        )
    raise Conflict(_("Only a member of the team can take this task."))


def set_done(user: User, task: Task, done: bool) -> None:
    """Mark done (or not done again); Conflict when it already is so, or
    when it is not `user`'s to finish."""
    if not may_finish(user, task):
        if task.assignee_id is None:
            raise Conflict(_("Take the task first."))
        raise Conflict(_("This task is someone else's."))
    values = (
        {"done_at": utcnow(), "done_by_id": user.id}
        if done
        else {"done_at": None, "done_by_id": None}
    )
    state = Task.done_at.is_(None) if done else Task.done_at.is_not(None)
    won = db.session.execute(
        update(Task)
        .where(Task.id == task.id, state)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(task)
    if not won:
        raise Conflict(
            _("This task is done already.") if done else _("This task is not done.")
        )
    notify.announce([task.assignee_id, task.created_by_id])
