"""Real worker processes for the background jobs' kill tests and bench.

`Workers` starts and SIGKILLs `flask --app app worker` processes (each in a
session of its own, so the kill takes its forked scheduler along) sharing a
`Cluster`'s database, Redis and queue; the helpers around it write a CSV
of distinct contacts, start its import through the import service (as the
page's Start button does) and read the job's row while the workers run it.

Everything waits by polling the database against a deadline.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from flask import Flask
from rq import Queue, Worker
from sqlalchemy import distinct, func, select
from werkzeug.datastructures import FileStorage

from portal.background import runs
from portal.extensions import db
from portal.imports import progress, service
from portal.models import BackgroundJob, Contact, ContactImport, JobKind, User
from portal.settings.service import current_account
from tests import factories
from tests.live_http import VENV_BIN
from tests.roulette_procs import Cluster, Proc, wait_until


@dataclass
class Workers:
    """The worker processes of one test, every one started with `env`."""

    cluster: Cluster
    env: dict[str, str] = field(default_factory=dict)
    prefix: str = "worker"
    alive: list[Proc] = field(default_factory=list)
    started: int = 0

    def start(self, wait: bool = True) -> Proc:
        """A new worker; with `wait`, once rq lists it as a worker of the
        queue (its loop and its watchdog are running)."""
        self.started += 1
        name = f"{self.prefix}-{self.started}"
        proc = Proc(
            name=name,
            command=[str(VENV_BIN / "flask"), "--app", "app", "worker"],
            env=self.cluster.env(**self.env),
            log_path=self.cluster.instance / f"{name}.log",
        )
        self.cluster.procs[name] = proc
        proc.start()
        self.alive.append(proc)
        if wait:
            self.wait_registered(proc)
        return proc

    def queue(self) -> Queue:
        return Queue(
            self.cluster.queue, connection=redis.Redis.from_url(self.cluster.redis_url)
        )

    def rq_workers(self) -> dict[int, Worker]:
        """rq's live workers of the queue, by process id."""
        queue = self.queue()
        try:
            return {w.pid: w for w in Worker.all(queue=queue) if w.pid}
        finally:
            queue.connection.close()

    def wait_registered(self, proc: Proc, timeout: float = 60.0) -> None:
        def registered() -> bool:
            self.check()
            return proc.popen.pid in self.rq_workers()

        wait_until(registered, timeout, f"{proc.name} to register with rq", 0.2)

    def running(self, rq_id: str) -> Proc | None:
        """The live worker whose rq loop runs `rq_id` now, if any."""
        by_pid = self.rq_workers()
        for proc in self.alive:
            worker = by_pid.get(proc.popen.pid)
            if worker is not None and worker.get_current_job_id() == rq_id:
                return proc
        return None

    def kill(self, proc: Proc) -> None:
        """SIGKILL, as the OOM killer or `kill -9` in a deploy would."""
        proc.kill()
        self.alive.remove(proc)

    def check(self) -> None:
        """Fail with its log when a worker we did not kill has exited."""
        for proc in self.alive:
            if not proc.running:
                raise AssertionError(
                    f"{proc.name} exited with {proc.popen.returncode}:\n"
                    + proc.log_tail()
                )

    def stop_all(self) -> None:
        # Killed, not stopped: nothing of a test outlives it (the next one
        # wipes the database and Redis), and a warm stop waits for rq.
        for proc in list(self.alive):
            self.kill(proc)


# --- the data -----------------------------------------------------------------


def write_contacts_csv(path: Path, rows: int, tag: str = "p") -> Path:
    """`rows` contacts, every phone and email distinct (and no duplicates of
    another file with another `tag`)."""
    prefix = sum(map(ord, tag)) % 90 + 10
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["Name", "Phone", "Email"])
        for n in range(rows):
            out.writerow(
                [f"Person {tag}{n}", f"({prefix}) 9{n:08d}", f"{tag}{n}@jobs.example"]
            )
    return path


def make_importer(app: Flask, email: str = "importer@jobs.example") -> int:
    """An admin (who may import); returns their id."""
    with app.test_request_context():
        user = factories.make_user("admin", email=email)
        user_id = user.id
        db.session.remove()
    return user_id


@dataclass(frozen=True)
class Started:
    import_id: int
    job_id: int
    rq_id: str


def start_import(app: Flask, importer_id: int, path: Path) -> Started:
    """Upload `path`, map its columns as guessed (duplicates skipped) and
    press Start: the job is committed and handed to the app's Redis."""
    with app.test_request_context():
        importer = db.session.get(User, importer_id)
        with path.open("rb") as fh:
            imp = service.store_upload(
                current_account(), importer, FileStorage(fh, filename=path.name)
            )
        columns = [service.form_value(target) for target in imp.mapping]
        service.save_mapping(imp, columns, "skip")
        progress.start_import(imp)
        job = runs.latest_for(JobKind.IMPORT, imp.id)
        started = Started(imp.id, job.id, runs.rq_id_of(job))
        db.session.remove()
    return started


@dataclass(frozen=True)
class JobRow:
    status: str
    processed: int
    total: int
    resumes: int
    errors: int
    reason: str | None


def job_row(app: Flask, job_id: int) -> JobRow:
    with app.app_context():
        job = db.session.get(BackgroundJob, job_id)
        row = JobRow(
            job.status, job.processed, job.total, job.resumes, job.errors, job.reason
        )
        db.session.remove()
    return row


def import_counts(app: Flask, import_id: int) -> dict[str, int | str]:
    with app.app_context():
        imp = db.session.get(ContactImport, import_id)
        counts = {
            "status": str(imp.status),
            "processed": imp.processed,
            "created": imp.created,
            "updated": imp.updated,
            "skipped": imp.skipped,
            "failed": imp.failed,
        }
        db.session.remove()
    return counts


def contact_counts(app: Flask) -> dict[str, int]:
    """Contacts in the database, and how many distinct phones and emails
    they have (a duplicate shows as fewer distinct than rows)."""
    with app.app_context():
        row = db.session.execute(
            select(
                func.count(),
                func.count(distinct(Contact.phone_e164)),
                func.count(distinct(Contact.email_normalized)),
            ).select_from(Contact)
        ).one()
        db.session.remove()
    return {"contacts": row[0], "phones": row[1], "emails": row[2]}


def wait_job(
    app: Flask,
    job_id: int,
    test: Callable[[JobRow], bool],
    timeout: float,
    what: str,
    check: Callable[[], None] | None = None,
    interval: float = 0.05,
) -> JobRow:
    """Poll the job's row until `test` passes; that row. `check` runs on
    every poll (a worker that died unasked fails the wait at once)."""
    seen: list[JobRow] = []

    def passed() -> JobRow | None:
        if check is not None:
            check()
        row = job_row(app, job_id)
        seen[:] = [row]
        return row if test(row) else None

    try:
        return wait_until(passed, timeout, what, interval)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the job is {seen[-1] if seen else '?'}") from None


def wait_ended(
    app: Flask, job_id: int, timeout: float, check: Callable[[], None] | None = None
) -> JobRow:
    return wait_job(
        app,
        job_id,
        lambda row: row.status not in ("queued", "running"),
        timeout,
        "the job to end",
        check,
        interval=0.2,
    )


def seconds_since(start: float) -> float:
    return round(time.monotonic() - start, 2)
