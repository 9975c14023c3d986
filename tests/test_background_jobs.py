"""Background jobs (portal.background): tries, the lease, the watchdog, cancel
and resume, against the suite's real database, Redis and RQ worker.

The kill of a real worker process is in tests/processes/test_jobs_kill.py;
here the watchdog meets the states a vanished worker leaves behind.
"""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from flask import current_app
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.job import JobStatus as RQStatus
from sqlalchemy import func, select

from portal.background import kinds, runs, watchdog
from portal.background.kinds import Kind
from portal.background.lease import Failed, Lease
from portal.errors import Conflict
from portal.extensions import db
from portal.models import BackgroundJob, Notification, User
from portal.models.base import utcnow
from portal.redis_conn import get_redis
from portal.settings.service import current_account
from tests import factories

COUNT = "test_count"
BOOM = "test_boom"
GIVE_UP = "test_give_up"
worked: list[int] = []


def _count_work(job: BackgroundJob, lease: Lease) -> None:
    """Counts to `total` in batches of 10, committing each one."""
    done = job.processed
    while done < job.total:
        done = min(done + 10, job.total)
        worked.append(done)
        lease.checkpoint(done)
        db.session.commit()


def _boom(job: BackgroundJob, lease: Lease) -> None:
    raise RuntimeError("the disk is full")


def _give_up(job: BackgroundJob, lease: Lease) -> None:
    raise Failed("file_gone")


@pytest.fixture
def test_kinds(app):
    worked.clear()
    for key, work in ((COUNT, _count_work), (BOOM, _boom), (GIVE_UP, _give_up)):
        kinds.register(Kind(key=key, label=key, work=work))
    saved = {k: app.config[k] for k in ("JOB_RETRY_DELAYS", "JOB_TRIES")}
    app.config["JOB_RETRY_DELAYS"] = [0]
    yield
    app.config.update(saved)
    for key in (COUNT, BOOM, GIVE_UP):
        kinds._kinds.pop(key, None)


@pytest.fixture
def admin(ctx) -> User:
    return factories.make_user(role="admin", email="admin@example.com")


def _queue(kind: str, admin: User, total: int = 35) -> BackgroundJob:
    return runs.queue_job(
        kind,
        account_id=current_account().id,
        started_by_id=admin.id,
        total=total,
    )


def _work_queue(app) -> Queue:
    """Run what is queued in a real RQ worker (burst), failures allowed."""
    queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while queue.count:
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return queue


def _reload(job: BackgroundJob) -> BackgroundJob:
    db.session.expire_all()
    return db.session.get(BackgroundJob, job.id)


def _abandon(job: BackgroundJob, **values: object) -> None:
    """What a SIGKILLed worker leaves: a running row whose lease lapsed, its
    RQ job taken off the queue."""
    redis = get_redis()
    redis.lrem(
        Queue(current_app.config["RQ_QUEUE"], connection=redis).key, 0, job.rq_id
    )
    job = _reload(job)
    for name, value in values.items():
        setattr(job, name, value)
    job.status = "running"
    job.holder = "gone"
    job.lease_until = utcnow() - timedelta(seconds=1)
    job.updated_at = utcnow() - timedelta(minutes=5)
    db.session.commit()


def test_a_job_runs_to_the_end_and_its_starter_is_told_once(
    app, ctx, admin, test_kinds
):
    job = _queue(COUNT, admin)
    assert job.status == "queued" and job.rq_id == f"job-{job.id}"
    _work_queue(app)
    job = _reload(job)
    assert (job.status, job.processed, job.total, job.percent) == ("done", 35, 35, 100)
    assert worked == [10, 20, 30, 35]
    assert job.holder is None and job.finished_at is not None
    notes = db.session.scalars(select(Notification).where(Notification.kind == "job"))
    assert [(n.user_id, n.data["status"]) for n in notes] == [(admin.id, "done")]
    assert runs.perform(job.id) is None  # an ended job: nothing to do


def test_a_real_error_spends_the_tries_then_stops_as_failed_with_its_reason(
    app, ctx, admin, test_kinds
):
    job = _queue(BOOM, admin)
    queue = _work_queue(app)
    job = _reload(job)
    assert (job.status, job.errors, job.reason) == ("failed", 3, runs.REASON_ERROR)
    assert "the disk is full" in job.detail
    assert "Resume" in runs.reason_text(job)
    # RQ agrees: one failed job, none waiting.
    assert queue.failed_job_registry.get_job_ids() == [job.rq_id]
    assert queue.count == 0
    # Resume gives new tries; the same RQ id is queued again, once.
    runs.resume(_reload(job))
    job = _reload(job)
    assert (job.status, job.errors, job.reason) == ("queued", 0, None)
    assert queue.failed_job_registry.get_job_ids() == []
    assert queue.job_ids == [job.rq_id]


def test_a_reason_no_retry_changes_fails_at_once(app, ctx, admin, test_kinds):
    job = _queue(GIVE_UP, admin)
    _work_queue(app)
    job = _reload(job)
    assert (job.status, job.errors, job.reason) == ("failed", 0, "file_gone")


def test_a_live_lease_keeps_a_second_run_out(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    first = Lease.take(job)
    assert first is not None
    assert Lease.take(_reload(job)) is None
    assert runs.perform(job.id) is None
    assert worked == []
    # The first run goes on; a run that lost the lease commits nothing more.
    first.checkpoint(10)
    db.session.commit()
    job = _reload(job)
    job.lease_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    second = Lease.take(_reload(job))
    assert second is not None
    with pytest.raises(runs.LeaseLost):
        first.checkpoint(20)
    db.session.rollback()
    assert _reload(job).processed == 10


def test_the_watchdog_queues_a_job_lost_with_redis_again_without_a_try(
    app, ctx, admin, test_kinds
):
    job = _queue(COUNT, admin, total=50)
    # Its last committed batch reached 20; one try went on an error.
    _abandon(job, processed=20, errors=1)
    get_redis().flushdb()  # Redis restarted empty
    assert watchdog.watch() == 1
    job = _reload(job)
    assert (job.status, job.resumes, job.errors, job.holder) == ("queued", 1, 1, None)
    rq_job = Job.fetch(job.rq_id, connection=get_redis())
    assert rq_job.retries_left == app.config["JOB_TRIES"] - 1 - 1
    _work_queue(app)
    job = _reload(job)
    assert (job.status, job.processed) == ("done", 50)
    assert worked == [30, 40, 50]  # from its last batch, none redone


def test_the_watchdog_takes_an_abandoned_execution_out_before_rq_counts_it_failed(
    app, ctx, admin, test_kinds
):
    job = _queue(COUNT, admin)
    queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
    rq_job = Job.fetch(job.rq_id, connection=queue.connection)
    # A worker took it and died: RQ's started registry holds an execution
    # whose heartbeat mark has passed.
    worker = SimpleWorker([queue], connection=queue.connection)
    execution = worker.prepare_execution(rq_job)
    queue.connection.zadd(queue.started_job_registry.key, {execution.composite_key: 1})
    queue.connection.lrem(queue.key, 0, rq_job.id)
    _abandon(job)
    assert watchdog.watch() == 1
    assert queue.started_job_registry.get_job_ids() == []
    assert queue.failed_job_registry.get_job_ids() == []
    assert queue.job_ids == [job.rq_id]
    _work_queue(app)
    assert _reload(job).status == "done"


def test_a_job_whose_rq_mark_passed_before_its_lease_is_picked_up_once_it_lapses(
    app, ctx, admin, test_kinds
):
    job = _queue(COUNT, admin)
    queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
    rq_job = Job.fetch(job.rq_id, connection=queue.connection)
    worker = SimpleWorker([queue], connection=queue.connection)
    execution = worker.prepare_execution(rq_job)
    rq_job.set_status(RQStatus.STARTED)
    queue.connection.lrem(queue.key, 0, rq_job.id)
    # RQ's mark counts whole seconds, so it can pass up to a second before
    # the lease it follows: the worker died, its lease has a moment left.
    queue.connection.zadd(queue.started_job_registry.key, {execution.composite_key: 1})
    # Its hash expired with its last heartbeat (rq's own delete trips on it).
    queue.connection.delete(execution.key)
    _abandon(job)
    job = _reload(job)
    job.lease_until = utcnow() + timedelta(seconds=5)
    db.session.commit()
    assert watchdog.watch() == 0
    assert queue.started_job_registry.get_job_ids() == []
    # The lease lapses. RQ's per-job execution registry still lists the
    # execution (for 60 s past its mark): no sign of a live worker.
    assert rq_job.execution_registry.get_execution_ids()
    get_redis().delete(watchdog.WATCH_LOCK)
    _abandon(job)
    assert watchdog.watch() == 1
    assert queue.job_ids == [job.rq_id]
    assert _reload(job).resumes == 1
    _work_queue(app)
    assert _reload(job).status == "done"
    assert queue.failed_job_registry.get_job_ids() == []


def test_a_waiting_job_with_its_rq_job_is_left_alone(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    job = _reload(job)
    job.updated_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert watchdog.watch() == 0
    assert _reload(job).resumes == 0


def test_a_fresh_row_on_its_way_to_rq_is_left_alone(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    Job.fetch(job.rq_id, connection=get_redis()).delete()
    assert watchdog.watch() == 0  # younger than a lease
    get_redis().delete(watchdog.WATCH_LOCK)
    job = _reload(job)
    job.updated_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert watchdog.watch() == 1


def test_one_watchdog_per_tick(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    _abandon(job)
    get_redis().set(watchdog.WATCH_LOCK, 1, px=5000)  # another worker's tick
    assert watchdog.watch() == 0
    get_redis().delete(watchdog.WATCH_LOCK)
    assert watchdog.watch() == 1


def test_a_job_that_keeps_killing_its_worker_stops_as_failed(
    app, ctx, admin, test_kinds
):
    job = _queue(COUNT, admin)
    _abandon(job, resumes=app.config["JOB_MAX_RESUMES"])
    assert watchdog.watch() == 1
    job = _reload(job)
    assert (job.status, job.reason) == ("failed", runs.REASON_ABANDONED)
    assert "too many times" in runs.reason_text(job)


def test_an_abandoned_job_someone_cancelled_ends_cancelled(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    _abandon(job)
    assert runs.cancel(_reload(job)) == "running"
    # (The watchdog waits a lease after the row's last change.)
    db.session.execute(
        BackgroundJob.__table__.update().values(
            updated_at=utcnow() - timedelta(minutes=5)
        )
    )
    db.session.commit()
    assert watchdog.watch() == 1
    assert _reload(job).status == "cancelled"


def test_cancel_a_waiting_job_at_once(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    assert runs.cancel(job) == "cancelled"
    assert Job.fetch(job.rq_id, connection=get_redis()).get_status() == "canceled"
    assert Queue(app.config["RQ_QUEUE"], connection=get_redis()).count == 0
    assert _reload(job).status == "cancelled"
    assert runs.perform(job.id) is None


def test_cancel_a_running_job_stops_it_at_its_next_batch(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    lease = Lease.take(job)
    lease.checkpoint(10)
    db.session.commit()
    assert runs.cancel(_reload(job)) == "running"
    with pytest.raises(runs.Cancelled):
        lease.checkpoint(20)
    db.session.rollback()
    assert runs.end(_reload(job), "cancelled", holder=lease.holder)
    job = _reload(job)
    assert (job.status, job.processed) == ("cancelled", 10)


def test_ended_jobs_refuse_cancel_and_resume_with_409(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    _work_queue(app)
    job = _reload(job)
    with pytest.raises(Conflict, match="nothing to cancel"):
        runs.cancel(job)
    with pytest.raises(Conflict, match="Only a failed job"):
        runs.resume(job)
    running = _queue(COUNT, admin)
    Lease.take(running)
    with pytest.raises(Conflict):
        runs.resume(_reload(running))


def test_two_endings_race_and_one_wins(app, ctx, admin, test_kinds):
    job = _queue(COUNT, admin)
    assert runs.end(job, "cancelled") is True
    assert runs.end(job, "done") is False
    assert _reload(job).status == "cancelled"
    count = db.session.scalar(select(func.count()).select_from(Notification))
    assert count == 1
