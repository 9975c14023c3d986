"""Tasks: something to do by a time, for a person or a whole team.

A team task belongs to the team until one member takes it; it is then that
member's (the team stays recorded, so the list can say where it came from).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column

TITLE_MAX = 200
NOTES_MAX = 5000


class Task(AccountScoped, db.Model):
    __table_args__ = (
        Index("ix_task_assignee_open", "assignee_id", "done_at", "due_at"),
        Index("ix_task_team_open", "team_id", "assignee_id", "done_at"),
        Index("ix_task_due", "due_notified", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    notes: Mapped[str] = mapped_column(Text, default="")
    # Stored in UTC; entered and shown in the user's time zone.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    # Who it is for: a user, or a team until a member takes it.
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Whether "it is due" was told (the due job and the sweep both look).
    due_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class TaskRule(AccountScoped, db.Model):
    """ "When <event>, give <task> to <assignee> (due in N hours)."

    `conditions` narrows the event (a lead's origin, department or campaign;
    the status changed to; the days without activity). Rules only ever give
    tasks, and giving a task is no event, so no rule can feed itself.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(30))
    conditions: Mapped[dict] = mapped_column(JSON, default=dict)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    due_hours: Mapped[int | None] = mapped_column(Integer)
    # owner | user | team | owner_lead (the owner's coordinator or manager)
    assignee: Mapped[str] = mapped_column(String(20))
    assignee_id: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()


class RuleFiring(db.Model):
    """That a rule fired for one event: the unique pair makes each event
    fire each rule exactly once, however often its job runs."""

    __table_args__ = (
        UniqueConstraint("rule_id", "event_key"),
        Index("ix_rule_firing_contact", "contact_id", "rule_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("task_rule.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(100))
    # The contact it fired for: "no activity" looks for a firing since the
    # contact's last activity.
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE")
    )
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()

    task: Mapped[Task | None] = relationship()
