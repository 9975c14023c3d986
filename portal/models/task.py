"""Tasks: something to do by a time, for a person or a whole team.

A team task belongs to the team until one member takes it; it is then that
member's (the team stays recorded, so the list can say where it came from).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
