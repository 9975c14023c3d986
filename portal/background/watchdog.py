"""The worker's look-out for jobs whose worker vanished, and what it does.

Every `watch_seconds()` one worker (a Redis lock keeps the others out of
the same tick) looks in two places:

1. RQ's started-job registry, whose marks each run moves to the end of its
   lease after every batch: an execution whose mark passed belongs to a
   worker that stopped without a word (SIGKILL, out of memory, a host
   reboot). RQ's own `cleanup()` would treat it as a failure and spend one
   of the job's tries on it; a kill is not an error, so our jobs are taken
   out first and queued again from their last committed batch, and RQ's
   cleanup then handles every other job (mail, notifications) as usual.
2. The database: an active job whose lease lapsed and that has no RQ job
   waiting or running behind it (Redis restarted or was emptied, or the
   RQ job was never created because the process died right after the
   commit) is queued again from its row.

A job picked up this way spends no try; one that took its worker down
JOB_MAX_RESUMES times stops as failed, and one a person asked to cancel
ends cancelled.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.utils import current_timestamp
from sqlalchemy import or_, select

from portal.background.lease import (
    jobs_table,
    lease_expired,
    lease_lapsed,
    lease_seconds,
    watch_seconds,
)
from portal.background.runs import (
    REASON_ABANDONED,
    end,
    rq_id_of,
    send_to_rq,
    tell_kind,
)
from portal.extensions import db
from portal.models import BackgroundJob, JobStatus
from portal.models.base import utcnow
from portal.models.jobs import ACTIVE_STATUSES
from portal.queue import get_queue

WATCH_LOCK = "jobs:watchdog"
_WAITING = (RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED)


def watch() -> int:
    """One look; returns how many jobs were picked up (or ended)."""
    queue = get_queue()
    redis = queue.connection
    # Slightly shorter than a tick: the next tick of any worker may look.
    if not redis.set(WATCH_LOCK, 1, nx=True, px=int(watch_seconds() * 900)):
        return 0
    picked = 0
    registry = queue.started_job_registry
    for entry in redis.zrangebyscore(registry.key, 0, current_timestamp()):
        try:
            rq_job = Job.fetch(registry.parse_job_id(entry), connection=redis)
        except NoSuchJobError:
            continue
        job_id = (rq_job.meta or {}).get("background_job_id")
        if job_id is None:
            continue
        # Out of the registry before RQ's cleanup can count it a failure;
        # by its entry, since the execution's own hash may have expired
        # with its heartbeat (rq's remove_executions raises on that).
        redis.zrem(registry.key, entry)
        job = db.session.get(BackgroundJob, job_id)
        if job is not None and job.status in ACTIVE_STATUSES and lease_expired(job):
            picked += pick_up(job)
    registry.cleanup()
    picked += _rows_without_a_job(queue)
    return picked


def _rows_without_a_job(queue) -> int:  # noqa: ANN001 - rq.Queue
    now = utcnow()
    # A row younger than a lease may still be on its way to RQ.
    settled = now - timedelta(seconds=lease_seconds())
    stale = db.session.scalars(
        select(BackgroundJob).where(
            BackgroundJob.status.in_(ACTIVE_STATUSES),
            or_(BackgroundJob.lease_until.is_(None), BackgroundJob.lease_until < now),
            BackgroundJob.updated_at < settled,
        )
    ).all()
    picked = 0
    for job in stale:
        if not _has_live_rq_job(queue, job):
            picked += pick_up(job)
    return picked


def _has_live_rq_job(queue, job: BackgroundJob) -> bool:  # noqa: ANN001
    try:
        rq_job = Job.fetch(job.rq_id or rq_id_of(job), connection=queue.connection)
    except NoSuchJobError:
        return False
    status = rq_job.get_status(refresh=False)
    if status in _WAITING:
        # Waiting for real only if it is still in the queue's list (or the
        # scheduler's, or a retry's pause).
        return (
            status != RQStatus.QUEUED or queue.get_job_position(rq_job.id) is not None
        )
    if status == RQStatus.STARTED:
        # A live worker holds it while one of its marks in the started
        # registry is ahead (every batch moves it). RQ's per-job execution
        # registry is no sign of life: it keeps an execution 60 s past its
        # mark, and the mark may pass (whole seconds) before the lease did,
        # so the first look took it out of the registry and left the job.
        registry = queue.started_job_registry
        now = current_timestamp()
        for execution_id in rq_job.execution_registry.get_execution_ids():
            mark = queue.connection.zscore(registry.key, f"{rq_job.id}:{execution_id}")
            if mark is not None and mark > now:
                return True
    return False


def pick_up(job: BackgroundJob) -> int:
    """Queue an abandoned job again from its row (guarded: two watchdogs
    pick it up once). Returns 1 when this call acted."""
    if job.cancel_requested:
        return int(end(job, JobStatus.CANCELLED))
    if job.resumes >= current_app.config["JOB_MAX_RESUMES"]:
        return int(end(job, JobStatus.FAILED, reason=REASON_ABANDONED))
    now = utcnow()
    won = db.session.execute(
        jobs_table.update()
        .where(
            jobs_table.c.id == job.id,
            jobs_table.c.status.in_(ACTIVE_STATUSES),
            jobs_table.c.resumes == job.resumes,
            lease_lapsed(now),
        )
        .values(
            status=JobStatus.QUEUED,
            holder=None,
            lease_until=None,
            resumes=jobs_table.c.resumes + 1,
            updated_at=now,
        )
    ).rowcount
    if not won:
        db.session.rollback()
        return 0
    db.session.refresh(job)
    tell_kind(job)
    db.session.commit()
    send_to_rq(job)
    return 1
