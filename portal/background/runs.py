"""A background job's life: queued, performed batch by batch, ended once.

The promises: a job is queued in RQ only after its row is committed (a row
whose RQ job never made it is queued again by the watchdog); every change
of status is a guarded UPDATE, so two workers, a person's Cancel and the
watchdog can race on a job and exactly one of them wins each step; a job
ends once, and the person who started it is told once; real errors spend
the job's tries (JOB_TRIES, with RQ's own `Retry` and its pauses), a
vanished worker spends none.
"""

from __future__ import annotations

from contextlib import suppress

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from redis import Redis
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select

from portal.background import kinds
from portal.background.lease import Cancelled, Failed, Lease, LeaseLost, jobs_table
from portal.errors import Conflict
from portal.extensions import db
from portal.models import BackgroundJob, JobStatus, Notification
from portal.models.base import utcnow
from portal.models.jobs import ACTIVE_STATUSES
from portal.queue import get_queue
from portal.redis_conn import get_redis

# Reasons every kind shares; a kind adds its own (kinds.Kind.reasons).
REASON_ERROR = "error"
REASON_ABANDONED = "abandoned"
REASON_UNKNOWN_KIND = "unknown_kind"
COMMON_REASONS = {
    REASON_ERROR: _l("It stopped on an error after every try. Resume to try again."),
    REASON_ABANDONED: _l(
        "It stopped its worker too many times (out of memory, perhaps). "
        "Resume to try again."
    ),
    REASON_UNKNOWN_KIND: _l("This kind of job no longer exists."),
}


def rq_id_of(job: BackgroundJob) -> str:
    return f"job-{job.id}"


def queue_job(
    kind: str,
    *,
    account_id: int,
    started_by_id: int | None,
    subject_id: int | None = None,
    total: int = 0,
    params: dict | None = None,
) -> BackgroundJob:
    """Create a job row, commit it, then hand it to RQ."""
    job = BackgroundJob(
        kind=kind,
        account_id=account_id,
        started_by_id=started_by_id,
        subject_id=subject_id,
        total=total,
        params=params or {},
        status=JobStatus.QUEUED,
    )
    db.session.add(job)
    db.session.commit()
    send_to_rq(job)
    return job


def send_to_rq(job: BackgroundJob) -> None:
    """(Re)create the job's RQ job, with the tries it has left.

    One RQ id per job: an old RQ job of the same id (failed, finished, or
    abandoned by its worker) is deleted first, so RQ's registries list the
    job once, where it is now.
    """
    kind = kinds.get(job.kind)
    rq_id = rq_id_of(job)
    queue = get_queue()
    delete_rq_job(rq_id, queue.connection)
    tries_left = max(0, current_app.config["JOB_TRIES"] - job.errors - 1)
    delays = current_app.config["JOB_RETRY_DELAYS"] or [0]
    queue.enqueue(
        "jobs.background.run",
        job.id,
        job_id=rq_id,
        job_timeout=kind.timeout_seconds if kind else 600,
        retry=Retry(max=tries_left, interval=delays) if tries_left else None,
        meta={"background_job_id": job.id},
        result_ttl=7 * 86400,
        failure_ttl=7 * 86400,
    )
    if job.rq_id != rq_id:
        job.rq_id = rq_id
        db.session.commit()


def delete_rq_job(rq_id: str, connection: Redis) -> None:
    """Delete an RQ job and its marks in RQ's registries, if it exists.

    A killed worker's execution outlives its hash: the hash expires with
    its last heartbeat, the job's execution registry lists it 60 s longer,
    and rq's own delete then raises ValueError looking it up. Its marks are
    taken out by id first.
    """
    try:
        old = Job.fetch(rq_id, connection=connection)
    except NoSuchJobError:
        return
    executions = old.execution_registry
    with connection.pipeline() as pipe:
        for execution_id in executions.get_execution_ids():
            pipe.zrem(old.started_job_registry.key, f"{rq_id}:{execution_id}")
        pipe.delete(executions.key)
        pipe.execute()
    old.delete()


def perform(job_id: int) -> dict | None:
    """The body of the RQ job: take the lease, do the work, end the job.

    Returns the job's counts, or None when there was nothing to do (no
    such job, already ended, or another run holds it). A real error is
    counted and raised again, for RQ to retry while tries are left.
    """
    job = db.session.get(BackgroundJob, job_id)
    if job is None or job.status not in ACTIVE_STATUSES:
        return None
    kind = kinds.get(job.kind)
    if kind is None:
        end(job, JobStatus.FAILED, reason=REASON_UNKNOWN_KIND)
        return summary(job)
    if job.cancel_requested:
        end(job, JobStatus.CANCELLED)
        return summary(job)
    lease = Lease.take(job)
    if lease is None:
        return None
    try:
        kind.work(job, lease)
    except LeaseLost:
        db.session.rollback()
        return None
    except Cancelled:
        db.session.rollback()
        end(job, JobStatus.CANCELLED, holder=lease.holder)
    except Failed as stop:
        db.session.rollback()
        end(job, JobStatus.FAILED, reason=stop.reason, holder=lease.holder)
    except Exception as exc:
        db.session.rollback()
        _count_error(job, lease, exc)
        raise
    else:
        end(job, JobStatus.DONE, holder=lease.holder)
    return summary(job)


def _count_error(job: BackgroundJob, lease: Lease, exc: Exception) -> None:
    """Spend one try; the last one ends the job as failed."""
    detail = f"{type(exc).__name__}: {exc}"[:500]
    db.session.refresh(job)
    if job.holder != lease.holder:
        return  # another run took over meanwhile: its word counts
    if job.errors + 1 >= current_app.config["JOB_TRIES"]:
        end(
            job,
            JobStatus.FAILED,
            reason=REASON_ERROR,
            detail=detail,
            holder=lease.holder,
            errors=job.errors + 1,
        )
        return
    db.session.execute(
        jobs_table.update()
        .where(jobs_table.c.id == job.id, jobs_table.c.holder == lease.holder)
        .values(
            errors=jobs_table.c.errors + 1,
            detail=detail,
            status=JobStatus.QUEUED,
            holder=None,
            lease_until=None,
            updated_at=utcnow(),
        )
    )
    db.session.commit()


def end(
    job: BackgroundJob,
    status: JobStatus,
    *,
    reason: str | None = None,
    detail: str | None = None,
    holder: str | None = None,
    errors: int | None = None,
) -> bool:
    """End an active job (guarded: only one ending wins), tell its kind in
    the same transaction, and notify the person who started it."""
    now = utcnow()
    guard = [jobs_table.c.id == job.id, jobs_table.c.status.in_(ACTIVE_STATUSES)]
    if holder is not None:
        guard.append(jobs_table.c.holder == holder)
    values: dict = {
        "status": status,
        "reason": reason,
        "finished_at": now,
        "updated_at": now,
        "holder": None,
        "lease_until": None,
    }
    if detail is not None:
        values["detail"] = detail
    if errors is not None:
        values["errors"] = errors
    won = db.session.execute(jobs_table.update().where(*guard).values(**values))
    if not won.rowcount:
        db.session.rollback()
        db.session.refresh(job)
        return False
    db.session.refresh(job)
    tell_kind(job)
    if job.started_by_id is not None:
        db.session.add(
            Notification(
                account_id=job.account_id,
                user_id=job.started_by_id,
                kind="job",
                data={"job_id": job.id, "kind": job.kind, "status": str(status)},
                url=job_url(job),
            )
        )
    db.session.commit()
    return True


def tell_kind(job: BackgroundJob) -> None:
    kind = kinds.get(job.kind)
    if kind is not None and kind.on_status is not None:
        kind.on_status(job)


def resume(job: BackgroundJob) -> None:
    """Give a failed job new tries; it goes on from its last committed
    batch. Raises Conflict for a job in any other state."""
    won = db.session.execute(
        jobs_table.update()
        .where(jobs_table.c.id == job.id, jobs_table.c.status == JobStatus.FAILED)
        .values(
            status=JobStatus.QUEUED,
            errors=0,
            reason=None,
            detail=None,
            finished_at=None,
            cancel_requested=False,
            updated_at=utcnow(),
        )
    ).rowcount
    if not won:
        db.session.rollback()
        db.session.refresh(job)
        raise Conflict(
            _(
                "Only a failed job can be resumed; this one is %(status)s.",
                status=status_label(job.status),
            )
        )
    db.session.refresh(job)
    tell_kind(job)
    db.session.commit()
    send_to_rq(job)


def cancel(job: BackgroundJob) -> JobStatus:
    """Cancel a waiting job at once, or ask a running one to stop after its
    current batch (what it committed stays). Returns the job's status
    after the call; raises Conflict for an ended job."""
    for _attempt in range(3):
        db.session.refresh(job)
        if job.status == JobStatus.QUEUED:
            if end(job, JobStatus.CANCELLED):
                with suppress(NoSuchJobError):
                    Job.fetch(rq_id_of(job), connection=get_redis()).cancel()
                return JobStatus.CANCELLED
            continue  # a worker took it meanwhile: ask the run instead
        if job.status == JobStatus.RUNNING:
            won = db.session.execute(
                jobs_table.update()
                .where(
                    jobs_table.c.id == job.id,
                    jobs_table.c.status == JobStatus.RUNNING,
                )
                .values(cancel_requested=True, updated_at=utcnow())
            ).rowcount
            db.session.commit()
            if won:
                db.session.refresh(job)
                return JobStatus.RUNNING
            continue
        break
    raise Conflict(
        _(
            "This job has ended (%(status)s); there is nothing to cancel.",
            status=status_label(job.status),
        )
    )


def latest_for(kind: str, subject_id: int) -> BackgroundJob | None:
    return db.session.scalar(
        select(BackgroundJob)
        .where(BackgroundJob.kind == kind, BackgroundJob.subject_id == subject_id)
        .order_by(BackgroundJob.id.desc())
        .limit(1)
    )


def summary(job: BackgroundJob) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": str(job.status),
        "processed": job.processed,
        "total": job.total,
        "reason": job.reason,
    }


def job_url(job: BackgroundJob) -> str:
    kind = kinds.get(job.kind)
    url = kind.url(job) if kind is not None and kind.url is not None else None
    return url or "/admin/jobs"


def reason_text(job: BackgroundJob) -> str | None:
    """Why the job failed, in the reader's language."""
    if job.status != JobStatus.FAILED or not job.reason:
        return None
    kind = kinds.get(job.kind)
    text = (kind.reasons.get(job.reason) if kind else None) or COMMON_REASONS.get(
        job.reason, COMMON_REASONS[REASON_ERROR]
    )
    return str(text)


STATUS_LABELS = {
    JobStatus.QUEUED: _l("waiting"),
    JobStatus.RUNNING: _l("running"),
    JobStatus.DONE: _l("done"),
    JobStatus.FAILED: _l("failed"),
    JobStatus.CANCELLED: _l("cancelled"),
}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(JobStatus(status), status))
