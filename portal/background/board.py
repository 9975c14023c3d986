"""What the admins' jobs page reads: an account's jobs of the last days,
their counts beside RQ's own registries, and the workers RQ sees alive.

RQ's registries are read without their clean-up (`cleanup=False`): cleaning
the started registry would fail a vanished worker's job and spend one of
its tries, which is the watchdog's call to make, not a page view's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, or_, select

from portal.background import kinds
from portal.background.runs import job_url, reason_text, status_label
from portal.errors import NotFound
from portal.extensions import db
from portal.models import BackgroundJob, JobStatus, User
from portal.models.base import utcnow
from portal.models.jobs import ACTIVE_STATUSES
from portal.queue import get_queue

RECENT_DAYS = 7
LIST_LIMIT = 200
_RQ_ID = re.compile(r"^job-(\d+)$")


@dataclass(frozen=True)
class JobRow:
    job: BackgroundJob
    kind_label: str
    started_by: str | None
    status_label: str
    reason: str | None
    url: str
    can_resume: bool
    can_cancel: bool
    stopping: bool


WORKER_STATES = {
    "started": _l("starting"),
    "idle": _l("idle"),
    "busy": _l("busy"),
    "suspended": _l("suspended"),
}


@dataclass(frozen=True)
class WorkerRow:
    name: str
    host: str | None
    pid: int | None
    state: str
    last_heartbeat: datetime | None
    job_id: int | None  # the background job it runs, when it runs one of ours
    job_kind: str | None


def kind_label(key: str) -> str:
    kind = kinds.get(key)
    return str(kind.label) if kind else key


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.key, str(kind.label)) for kind in kinds.all_kinds()]


def get_job(account_id: int, job_id: int) -> BackgroundJob:
    """The account's job, or NotFound (another account's job included)."""
    job = db.session.get(BackgroundJob, job_id)
    if job is None or job.account_id != account_id:
        raise NotFound()
    return job


def _recent(account_id: int) -> list:
    """Jobs of the last RECENT_DAYS, and every active one however old."""
    since = utcnow() - timedelta(days=RECENT_DAYS)
    return [
        BackgroundJob.account_id == account_id,
        or_(
            BackgroundJob.created_at >= since,
            BackgroundJob.status.in_(ACTIVE_STATUSES),
        ),
    ]


def recent_jobs(
    account_id: int, *, status: str | None = None, kind: str | None = None
) -> list[JobRow]:
    query = (
        select(BackgroundJob, User.name)
        .outerjoin(User, User.id == BackgroundJob.started_by_id)
        .where(*_recent(account_id))
        .order_by(BackgroundJob.id.desc())
        .limit(LIST_LIMIT)
    )
    if status:
        query = query.where(BackgroundJob.status == status)
    if kind:
        query = query.where(BackgroundJob.kind == kind)
    return [_row(job, name) for job, name in db.session.execute(query)]


def _row(job: BackgroundJob, started_by: str | None) -> JobRow:
    active = job.status in ACTIVE_STATUSES
    return JobRow(
        job=job,
        kind_label=kind_label(job.kind),
        started_by=started_by,
        status_label=status_label(job.status),
        reason=reason_text(job),
        url=job_url(job),
        can_resume=job.status == JobStatus.FAILED,
        can_cancel=active and not job.cancel_requested,
        stopping=active and job.cancel_requested,
    )


def status_counts(account_id: int) -> dict[str, int]:
    """Jobs by status over the same window as the list."""
    counts = dict.fromkeys((str(s) for s in JobStatus), 0)
    rows = db.session.execute(
        select(BackgroundJob.status, func.count())
        .where(*_recent(account_id))
        .group_by(BackgroundJob.status)
    )
    for status, count in rows:
        counts[str(status)] = count
    return counts


def _ours(account_id: int, rq_ids: list[str]) -> int:
    """How many of `rq_ids` are jobs of this account."""
    ids = [int(m.group(1)) for m in map(_RQ_ID.match, rq_ids) if m]
    if not ids:
        return 0
    return (
        db.session.scalar(
            select(func.count()).where(
                BackgroundJob.account_id == account_id, BackgroundJob.id.in_(ids)
            )
        )
        or 0
    )


def rq_counts(account_id: int) -> dict[str, int]:
    """The account's jobs as RQ holds them: waiting in the queue (or for a
    retry's pause), being run, and in RQ's failed registry."""
    queue = get_queue()
    waiting = queue.get_job_ids() + ScheduledJobRegistry(queue=queue).get_job_ids(
        cleanup=False
    )
    return {
        "waiting": _ours(account_id, waiting),
        "running": _ours(
            account_id, StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
        ),
        "failed": _ours(
            account_id, FailedJobRegistry(queue=queue).get_job_ids(cleanup=False)
        ),
    }


def _worker_state(worker: Worker) -> str:
    state = worker.get_state()
    state = getattr(state, "value", state)
    return str(WORKER_STATES.get(state, state))


def workers(account_id: int) -> list[WorkerRow]:
    """The workers of our queue that RQ holds alive by their heartbeat, each
    with the background job it runs now (when it is this account's)."""
    queue = get_queue()
    rows = []
    for worker in Worker.all(queue=queue):
        rq_id = worker.get_current_job_id()
        match = _RQ_ID.match(rq_id or "")
        job_id = int(match.group(1)) if match else None
        job = db.session.get(BackgroundJob, job_id) if job_id else None
        if job is not None and job.account_id != account_id:
            job = None
        rows.append(
            WorkerRow(
                name=worker.name,
                host=worker.hostname,
                pid=worker.pid,
                state=_worker_state(worker),
                last_heartbeat=worker.last_heartbeat,
                job_id=job.id if job else None,
                job_kind=kind_label(job.kind) if job else None,
            )
        )
    return sorted(rows, key=lambda row: row.name)
