"""CSV imports of contacts: the uploaded file, its mapping and the job's progress."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column


class ImportStatus(enum.StrEnum):
    UPLOADED = "uploaded"  # file checked, columns not mapped yet
    MAPPED = "mapped"  # mapping saved, preview shown
    QUEUED = "queued"  # job enqueued
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the job stopped; Resume goes on where it stopped
    CANCELLED = "cancelled"  # stopped by a person; what was committed stays


class DuplicatePolicy(enum.StrEnum):
    UPDATE = "update"
    SKIP = "skip"


class ContactImport(AccountScoped, db.Model):
    """One upload of a contacts CSV and what its import job did with it.

    `processed` counts the file's records already committed, so a job that
    runs again resumes after them; `report_bytes` is how much of the error
    report belongs to those records.
    """

    __tablename__ = "contact_import"
    __table_args__ = (Index("ix_contact_import_user", "account_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The name the browser sent, shown to people only; never part of a path.
    filename: Mapped[str] = mapped_column(String(255))
    # "<uuid>.csv" under instance/imports/.
    stored_name: Mapped[str] = mapped_column(String(64))
    encoding: Mapped[str] = mapped_column(String(20))
    delimiter: Mapped[str] = mapped_column(String(1))
    header: Mapped[list] = mapped_column(JSON, default=list)
    # One target per column: name, phone, email, owner, department, campaign,
    # tags, status, custom, ignore.
    mapping: Mapped[list] = mapped_column(JSON, default=list)
    on_duplicate: Mapped[str] = mapped_column(String(10), default=DuplicatePolicy.SKIP)
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.UPLOADED)
    message: Mapped[str | None] = mapped_column(String(500))
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # {owner user id: contacts given to them}, told to each owner at the end.
    assigned: Mapped[dict] = mapped_column(JSON, default=dict)
    report_name: Mapped[str | None] = mapped_column(String(64))
    report_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
