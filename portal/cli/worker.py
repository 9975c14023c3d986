"""The RQ worker behind `flask --app app worker`.

We use rq's SimpleWorker, which runs each job in the worker process itself.
rq's default Worker forks a "work horse" per job, and the horse would inherit
the parent's open database connections (SQLAlchemy's pool): two processes
talking over one PostgreSQL socket corrupt it. SimpleWorker avoids the fork,
keeps the app (already built, translations loaded) warm between jobs, and
still enforces job timeouts (SIGALRM in the main thread). Run more worker
processes to run more jobs at once.

The scheduler (`enqueue_in`/`enqueue_at`) is rq's own: the worker forks it
once at start-up, before any job has opened a database connection, and it
only ever talks to Redis.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job

from portal.redis_conn import get_redis


class AppContextWorker(SimpleWorker):
    """A SimpleWorker that runs every job in a fresh app context.

    A fresh context per job gives each job its own database session, removed
    when the job ends, so no job sees rows another job left cached.
    """

    def __init__(self, queues: list[Queue], *, app: Flask, **kwargs) -> None:
        self.flask_app = app
        super().__init__(queues, **kwargs)

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.flask_app.app_context():
            super().execute_job(job, queue)


log = logging.getLogger(__name__)

# The sweeper expires overdue offers every tick and does the rest of the
# roulette's safety net every FULL_SWEEP_EVERY ticks.
SWEEP_SECONDS = 1.0
FULL_SWEEP_EVERY = 5


class Sweeper(threading.Thread):
    """Runs the roulette's sweep beside the worker, whatever jobs it runs.

    rq's scheduler may take minutes to fail over after a crash; this keeps
    an offer's lateness bounded by one tick after the worker (re)starts.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__(name="roleta-sweeper", daemon=True)
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        from portal.roulette.service import sweep

        tick = 0
        while not self.stopping.is_set():
            try:
                with self.app.app_context():
                    sweep(full=tick % FULL_SWEEP_EVERY == 0)
            except Exception:  # a database or Redis blip: try next tick
                log.exception("roulette sweep failed")
            tick += 1
            self.stopping.wait(SWEEP_SECONDS)


def run_worker(app: Flask, *, burst: bool = False) -> bool:
    """Work on the app's queue with the scheduler and the roulette's sweeper
    until stopped (SIGINT/SIGTERM ask for a warm shutdown). In burst mode,
    return once the queue is empty (no sweeper). Returns whether any job ran."""
    connection = get_redis(app)
    queue = Queue(app.config["RQ_QUEUE"], connection=connection)
    worker = AppContextWorker([queue], connection=connection, app=app)
    sweeper = None if burst else Sweeper(app)
    if sweeper is not None:
        sweeper.start()
    try:
        return worker.work(burst=burst, with_scheduler=True)
    finally:
        if sweeper is not None:
            sweeper.stopping.set()
            sweeper.join(timeout=5)
