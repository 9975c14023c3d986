"""The RQ worker behind `flask --app app worker`.

We use rq's SimpleWorker, which runs each job in the worker process itself.
rq's default Worker forks a "work horse" per job, and the horse would inherit
the parent's open database connections (SQLAlchemy's pool): two processes
talking over one PostgreSQL socket corrupt it. SimpleWorker avoids the fork,
keeps the app (already built, translations loaded) warm between jobs, and
still enforces job timeouts (SIGALRM in the main thread). Run more worker
processes to run more jobs at once.

The scheduler (`enqueue_in`/`enqueue_at`) is rq's own: the worker forks it
at start-up, before any job has opened a database connection, and it only
ever talks to Redis. It dies when it loses Redis (a Redis restart), and rq
itself would fork a new one only at its ten-minute maintenance; we check
every few seconds between jobs instead (the fork happens in the main thread,
where rq does it, and the child never touches the inherited database
connections). A worker whose loop ends on an error (rq quits on a Redis
timeout) starts over rather than leaving the process running without one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import redis
from flask import Flask
from rq import Queue, SimpleWorker, worker_registration
from rq.exceptions import StopRequested
from rq.job import Job

from portal.background.lease import watch_seconds
from portal.background.watchdog import watch
from portal.redis_conn import get_redis
from portal.roulette.router import Router
from portal.roulette.sweep import sweep, sweep_queue
from portal.tasks.firing import idle_sweep
from portal.tasks.notify import sweep_due

log = logging.getLogger(__name__)

# rq blocks on the queue for worker_ttl - 15 s at a time; between blocks it
# looks after its scheduler.
WORKER_TTL = 20
# While a job runs, the worker's heartbeat (its key lives WORKER_TTL + 60 s).
HEARTBEAT_SECONDS = 10.0
SCHEDULER_CHECK_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 1.0


class AppContextWorker(SimpleWorker):
    """A SimpleWorker that runs every job in a fresh app context and keeps
    its scheduler process alive.

    A fresh context per job gives each job its own database session, removed
    when the job ends, so no job sees rows another job left cached.
    """

    def __init__(
        self,
        queues: list[Queue],
        *,
        app: Flask,
        revive_scheduler: bool = True,
        **kwargs: Any,
    ) -> None:
        self.flask_app = app
        self.revive_scheduler = revive_scheduler
        self._scheduler_checked = time.monotonic()
        # Whether SIGINT/SIGTERM asked us to stop (rq raises StopRequested
        # when idle without keeping a note of it).
        self.stop_asked = False
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        super().__init__(queues, **kwargs)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)

    def execute_job(self, job: Job, queue: Queue) -> None:
        # rq's SimpleWorker beats no heartbeat while a job runs: a job
        # longer than the worker's key lives would make a busy worker look
        # gone (to the jobs page, and to rq's own monitoring).
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat_until, args=(done,), name="rq-heartbeat", daemon=True
        )
        beat.start()
        try:
            with self.flask_app.app_context():
                super().execute_job(job, queue)
        finally:
            done.set()
            beat.join(timeout=5)

    def _beat_until(self, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(redis.RedisError):
                self.heartbeat()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # A Redis restart or flush forgets the worker; rq's heartbeat would
        # bring back a bare hash that no listing finds. Register it again.
        if pipeline is None and not self.connection.exists(self.key):
            with self.connection.pipeline() as again:
                again.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, again)
                again.execute()
        super().heartbeat(timeout, pipeline)

    @property
    def should_run_maintenance_tasks(self) -> bool:
        # rq asks this on every turn of its dequeue loop (each time a job
        # ends, and every dequeue timeout while idle): the hook to look
        # after the scheduler between its own ten-minute maintenances.
        self.check_scheduler()
        return super().should_run_maintenance_tasks

    def check_scheduler(self) -> bool:
        """Fork a new scheduler when ours died (or another worker's lock has
        lapsed); at most every SCHEDULER_CHECK_SECONDS. True when one was
        started."""
        scheduler = self.scheduler
        if not self.revive_scheduler or scheduler is None:
            return False
        now = time.monotonic()
        if now - self._scheduler_checked < SCHEDULER_CHECK_SECONDS:
            return False
        self._scheduler_checked = now
        # rq keeps the scheduler's process here; is_alive() also reaps it.
        process = getattr(scheduler, "_process", None)
        if process is not None and process.is_alive():
            return False
        try:
            # Starts a scheduler only if the lock is ours (free, or ours
            # already): one scheduler per queue across all workers.
            started = bool(scheduler.acquire_locks(auto_start=True))
        except redis.RedisError as exc:
            log.warning("could not restart the scheduler yet (%s)", exc)
            return False
        if started:
            log.warning("the scheduler process had stopped; started a new one")
        return started


# Overdue offers are expired every EXPIRY_SECONDS (the roulette's one expiry
# clock: no job is scheduled per offer); the rest of the roulette's safety
# net (waiting leads, long-wait alerts, stale presence) runs every
# FULL_SWEEP_SECONDS in a thread of its own, so a long pass over the queue
# never delays an expiry.
EXPIRY_SECONDS = 0.5
FULL_SWEEP_SECONDS = 5.0
# A task's due notice has its own scheduled job; this catches one lost.
TASK_DUE_SECONDS = 30.0
# "No activity for N days" rules: a day's granularity needs no faster look.
TASK_IDLE_SECONDS = 300.0


class Sweeper(threading.Thread):
    """Runs one piece of the safety net beside the worker, whatever jobs it
    runs: the roulette's expiry, its full sweep, or the background jobs'
    watchdog.

    A thread of its own, so that neither a long job nor rq's scheduler
    (which looks for due jobs once a second, and may take minutes to fail
    over after a crash) delays it: an offer's lateness, or a vanished
    job's pause, is bounded by one tick after the worker (re)starts.
    """

    def __init__(
        self, app: Flask, name: str, interval: float, work: Callable[[], object]
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.app = app
        self.interval = interval
        self.work = work
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.app.app_context():
                    self.work()
            except Exception:  # a database or Redis blip: try next tick
                log.exception("%s failed", self.name)
            self.stopping.wait(self.interval)


def safety_net(app: Flask) -> list[Sweeper]:
    """The threads every (non-burst) worker runs beside its jobs."""
    with app.app_context():
        watch_every = watch_seconds()
    return [
        Sweeper(app, "roleta-expiry", EXPIRY_SECONDS, lambda: sweep(full=False)),
        Sweeper(app, "roleta-sweeper", FULL_SWEEP_SECONDS, sweep_queue),
        Sweeper(app, "roleta-job-watchdog", watch_every, watch),
        Sweeper(app, "roleta-task-due", TASK_DUE_SECONDS, sweep_due),
        Sweeper(app, "roleta-task-idle", TASK_IDLE_SECONDS, idle_sweep),
    ]


def run_worker(app: Flask, *, burst: bool = False) -> bool:
    """Work on the app's queue with the scheduler, the roulette's router and
    its sweeper until stopped (SIGINT/SIGTERM ask for a warm shutdown). In burst mode,
    expire the overdue offers once and return once the queue is empty (no
    sweeper, no router). Returns whether any job ran."""
    connection = get_redis(app)
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)
    sweepers = [] if burst else safety_net(app)
    for sweeper in sweepers:
        sweeper.start()
    router = None if burst else Router(app)
    if router is not None:
        router.start()
    try:
        if burst:
            # What the sweepers would do first: offers have no expiry job,
            # and a job whose worker vanished is queued again.
            with app.app_context():
                sweep(full=False)
                watch()
            worker = AppContextWorker(
                [queue], connection=connection, app=app, revive_scheduler=False
            )
            return worker.work(burst=True, with_scheduler=True)
        worked = False
        while True:
            worker = AppContextWorker([queue], connection=connection, app=app)
            try:
                worked = worker.work(with_scheduler=True) or worked
            except redis.RedisError as exc:
                # Starting up needs Redis; it will be back.
                log.warning("the worker could not start (%s)", exc)
            if worker.stop_asked:
                return worked
            # rq ended its loop on an error it logged (it quits on a Redis
            # timeout, for one): keep working.
            log.warning("the worker loop ended unasked; starting a new one")
            # Until the next worker installs its own, rq's signal handlers
            # of this one are in place, and raise when called.
            with contextlib.suppress(StopRequested, redis.RedisError):
                time.sleep(RESTART_PAUSE_SECONDS)
            if worker.stop_asked:
                return worked
    finally:
        if router is not None:
            router.stop()
        for sweeper in sweepers:
            sweeper.stopping.set()
        for sweeper in sweepers:
            sweeper.join(timeout=5)
