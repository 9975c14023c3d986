"""The one run that may work on a job: a lease in the job's own row.

The promise: at most one run commits batches of a job at a time, and a run
whose worker vanished holds the job no longer than one lease. A run takes
the lease with a guarded UPDATE and renews it inside every batch's
transaction (`checkpoint`), so a run that lost its lease (its worker was
thought gone, another run took over) cannot commit one more batch: its
renewal matches no row and the batch rolls back. Each renewal also beats
RQ's own heartbeat for the execution, so RQ's started-job registry shows the
job abandoned as soon as the lease lapses.

Timing follows one setting, JOB_RESUME_SECONDS: the lease lasts 40 % of it
and the watchdog looks every sixth of it, so a job whose worker was killed
is queued again well within it.
"""

from __future__ import annotations

import math
import uuid
from contextlib import suppress
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy import ColumnElement, or_

from portal.extensions import db
from portal.models import BackgroundJob, JobStatus
from portal.models.base import utcnow
from portal.models.jobs import ACTIVE_STATUSES

jobs_table = BackgroundJob.__table__


class Stop(Exception):  # noqa: N818 - a signal to stop, not an error
    """The run must stop now; its current batch is rolled back."""


class LeaseLost(Stop):
    """Another run took the job over."""


class Cancelled(Stop):
    """A person asked the job to stop."""


class Failed(Stop):
    """The job cannot go on for a reason no retry will change."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lease_seconds() -> float:
    return max(2.0, current_app.config["JOB_RESUME_SECONDS"] * 0.4)


def watch_seconds() -> float:
    return max(0.5, current_app.config["JOB_RESUME_SECONDS"] / 6)


def lease_expired(job: BackgroundJob, now: datetime | None = None) -> bool:
    return job.lease_until is None or job.lease_until < (now or utcnow())


def lease_lapsed(now: datetime) -> ColumnElement[bool]:
    """The SQL twin of `lease_expired`: no run holds the row at `now`."""
    return or_(
        jobs_table.c.holder.is_(None),
        jobs_table.c.lease_until.is_(None),
        jobs_table.c.lease_until < now,
    )


class Lease:
    """The lease one run holds on one job."""

    def __init__(self, job_id: int, holder: str, seconds: float) -> None:
        self.job_id = job_id
        self.holder = holder
        self.seconds = seconds

    @classmethod
    def take(cls, job: BackgroundJob) -> Lease | None:
        """Take the job for this run and mark it running (committed); None
        while another run's lease is still good."""
        seconds = lease_seconds()
        holder = uuid.uuid4().hex
        now = utcnow()
        won = db.session.execute(
            jobs_table.update()
            .where(
                jobs_table.c.id == job.id,
                jobs_table.c.status.in_(ACTIVE_STATUSES),
                lease_lapsed(now),
            )
            .values(
                holder=holder,
                lease_until=now + timedelta(seconds=seconds),
                status=JobStatus.RUNNING,
                started_at=db.func.coalesce(jobs_table.c.started_at, now),
                updated_at=now,
            )
        ).rowcount
        db.session.commit()
        db.session.refresh(job)
        if not won:
            return None
        lease = cls(job.id, holder, seconds)
        lease.beat_rq()
        return lease

    def checkpoint(self, processed: int, total: int | None = None) -> None:
        """Renew the lease and record progress, inside the batch's own
        transaction just before it commits. Raises LeaseLost when another
        run holds the job now and Cancelled when a person asked it to stop
        (either way the caller rolls the batch back)."""
        now = utcnow()
        values: dict = {
            "lease_until": now + timedelta(seconds=self.seconds),
            "processed": processed,
            "updated_at": now,
        }
        if total is not None:
            values["total"] = total
        row = db.session.execute(
            jobs_table.update()
            .where(
                jobs_table.c.id == self.job_id,
                jobs_table.c.holder == self.holder,
                jobs_table.c.status == JobStatus.RUNNING,
            )
            .values(**values)
            .returning(jobs_table.c.cancel_requested)
        ).first()
        if row is None:
            raise LeaseLost()
        if row.cancel_requested:
            raise Cancelled()
        self.beat_rq()

    def holds(self) -> bool:
        """Whether this run still holds the job (read from the database)."""
        holder = db.session.scalar(
            db.select(jobs_table.c.holder).where(jobs_table.c.id == self.job_id)
        )
        return holder == self.holder

    def beat_rq(self) -> None:
        """Move this execution's mark in RQ's started-job registry to the
        end of the lease (rq's SimpleWorker sets it to the job's whole
        timeout and beats no heartbeat while the job runs)."""
        rq_job = get_current_job()
        if rq_job is None:
            return
        ttl = math.ceil(self.seconds)
        # A Redis blip must not stop the work: the database holds the lease.
        # (An execution whose hash just expired reads as ValueError.)
        with suppress(RedisError, ValueError), rq_job.connection.pipeline() as pipe:
            for execution in rq_job.get_executions():
                execution.heartbeat(rq_job.started_job_registry, ttl, pipe)
            pipe.execute()
