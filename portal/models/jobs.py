"""Background jobs: one row per piece of long work, whatever its kind.

The row, not Redis, is the job's memory: its status, progress, the tries
its real errors used, how often it was picked up again after its worker
vanished, and the lease of the run working on it now. RQ carries the work
to a worker; a job lost with Redis is queued again from this row.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker (also between tries)
    RUNNING = "running"  # a run holds its lease
    DONE = "done"
    FAILED = "failed"  # stopped for good; Resume gives it new tries
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
ENDED_STATUSES = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class JobKind(enum.StrEnum):
    IMPORT = "import"
    REASSIGN = "reassign"


class BackgroundJob(AccountScoped, db.Model):
    """One background job: what it works on, how far it got, who runs it."""

    __tablename__ = "background_job"
    __table_args__ = (
        Index("ix_background_job_recent", "account_id", "created_at"),
        Index("ix_background_job_subject", "kind", "subject_id"),
        Index("ix_background_job_active", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The record the job works on (an import's id), by kind.
    subject_id: Mapped[int | None] = mapped_column(Integer)
    # What the kind needs beyond its subject (a reassignment's heirs), and
    # what it keeps between runs (the counts it moved).
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    started_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Why it failed, as a code worded in the reader's language when shown;
    # `detail` keeps the error's own text for the admin.
    reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(500))
    # Tries spent on real errors; a vanished worker spends none.
    errors: Mapped[int] = mapped_column(Integer, default=0)
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The run working on it: a token of its own and until when it holds the
    # job unless it renews (it does after every batch).
    holder: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rq_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, self.processed * 100 // self.total)
