"""Background jobs after a SIGKILL (issue 18): how soon a killed import moves
again, and whether it ends with the counts of an uninterrupted run.

Runs real `flask --app app worker` processes at the default
JOB_RESUME_SECONDS (30: a 12 s lease, the watchdog every 5 s) on a
30,000-row CSV of distinct contacts:

1. an uninterrupted import, timed from the job's start to its end (rows/s);
2. the floor: the same contact rows inserted into the same table (the same
   indexes) by a plain SQLAlchemy Core `executemany`, 1,000 rows to a
   transaction like the import's batches, in the same run;
3. the same file imported again, its worker SIGKILLed at 5 random points (a
   new worker started at once each time): the time from each kill until
   the job's `processed` moves again (p50 and max, target <= 30 s), and the
   end counts against the uninterrupted run's (every row created once).

    .venv/bin/python -m bench.jobs                       # SQLite + embedded Redis
    .venv/bin/python -m bench.jobs --pg                  # PostgreSQL + Redis db 9
    .venv/bin/python -m bench.jobs --kills 3 --rows 10000 --seed 7

`--pg` creates (and afterwards drops) the PostgreSQL database
`helper_bench_jobs` and uses Redis db 9; DATABASE_URL/REDIS_URL in the
environment win over both.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from bench.common import make_app, pct, verdict

PG_NAME = "helper_bench_jobs"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_REDIS_URL = "redis://127.0.0.1:6379/9"
BATCH = 1000
WAIT_SECONDS = 300.0


def prepare_backends(pg: bool) -> tuple[str | None, str | None, bool]:
    """(database_url, redis_url, created_pg): None means the embedded default."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    created = False
    if pg and not database_url:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_NAME}")
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_NAME}"
        created = True
    if pg and not redis_url:
        redis_url = PG_REDIS_URL
    if redis_url:
        import redis

        # A stale queue or registry of an earlier run would distort this one.
        redis.Redis.from_url(redis_url).flushdb()
    return database_url, redis_url, created


def drop_pg() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


def job_times(app, job_id: int) -> float:
    """Seconds from the job's start to its end, as its row says."""
    from portal.extensions import db
    from portal.models import BackgroundJob

    with app.app_context():
        job = db.session.get(BackgroundJob, job_id)
        seconds = (job.finished_at - job.started_at).total_seconds()
        db.session.remove()
    return seconds


def wait_for(app, job_id: int, test, workers, timeout: float = WAIT_SECONDS):
    from tests.jobs_procs import wait_job

    return wait_job(app, job_id, test, timeout, "the job", workers.check)


def ended(row) -> bool:
    return row.status not in ("queued", "running")


def floor_rows_per_second(app) -> float:
    """Take the contacts the import created out and put them back with a
    plain executemany, 1,000 to a transaction; leaves the table empty."""
    from sqlalchemy import delete, select

    from portal.extensions import db
    from portal.models import Contact

    table = Contact.__table__
    columns = [c for c in table.columns if c.name != "id"]
    with app.app_context():
        rows = [dict(r._mapping) for r in db.session.execute(select(*columns))]
        db.session.execute(delete(Contact))
        db.session.commit()
        with db.engine.connect() as conn:
            start = time.perf_counter()
            for at in range(0, len(rows), BATCH):
                conn.execute(table.insert(), rows[at : at + BATCH])
                conn.commit()
            seconds = time.perf_counter() - start
        db.session.execute(delete(Contact))
        db.session.commit()
        db.session.remove()
    return len(rows) / seconds


def killed_run(app, workers, started, args, batch_seconds: float) -> list[float]:
    """SIGKILL the worker at `args.kills` random points, a new one at once
    each time; the seconds from each kill until the job moved again."""
    from tests.jobs_procs import job_row

    rng = random.Random(args.seed)
    batches = args.rows // BATCH
    points = sorted(rng.sample(range(1, batches - 2), args.kills))
    resumed = []
    for point in points:
        wait_for(
            app,
            started.job_id,
            lambda r, at=point * BATCH: r.status == "running" and r.processed >= at,
            workers,
        )
        # Somewhere inside a batch, not at its edge.
        time.sleep(rng.uniform(0, batch_seconds))
        (victim,) = workers.alive
        killed = time.monotonic()
        workers.kill(victim)
        at = job_row(app, started.job_id).processed
        workers.start(wait=False)
        wait_for(app, started.job_id, lambda r, at=at: r.processed > at, workers)
        resumed.append(time.monotonic() - killed)
        print(
            f"  kill {len(resumed)}: at {at:,} rows; moved again after "
            f"{resumed[-1]:.1f} s"
        )
    return resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--resume-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL + Redis db 9")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)

    from portal.redis_conn import redis_url
    from tests.jobs_procs import (
        Workers,
        contact_counts,
        import_counts,
        make_importer,
        start_import,
        write_contacts_csv,
    )
    from tests.roulette_procs import Cluster

    database_url, redis_address, created = prepare_backends(args.pg)
    app = make_app(database_url, redis_address)
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    instance = Path(app.instance_path)
    cluster = Cluster(
        instance=instance,
        database_url=app.config["SQLALCHEMY_DATABASE_URI"],
        redis_url=redis_url(app),
        queue=app.config["RQ_QUEUE"],
    )
    workers = Workers(cluster, {"JOB_RESUME_SECONDS": f"{args.resume_seconds:g}"})
    print(
        f"database: {db_kind}; rows: {args.rows:,}; kills: {args.kills}; "
        f"JOB_RESUME_SECONDS={args.resume_seconds:g}; seed {args.seed}; "
        f"worker logs in {instance}"
    )
    try:
        importer = make_importer(app, "importer@bench.example")
        path = write_contacts_csv(instance / "bench-jobs.csv", args.rows)
        workers.start()

        # 1. Uninterrupted.
        plain = start_import(app, importer, path)
        row = wait_for(app, plain.job_id, ended, workers)
        assert row.status == "done", row
        plain_s = job_times(app, plain.job_id)
        plain_counts = import_counts(app, plain.import_id)
        plain_contacts = contact_counts(app)
        import_rps = args.rows / plain_s
        print(
            f"uninterrupted import: {plain_s:.2f} s = {import_rps:,.0f} rows/s; "
            f"{plain_counts}; {plain_contacts}"
        )

        # 2. The floor, in the same table.
        floor_rps = floor_rows_per_second(app)
        print(
            f"floor (plain executemany, same rows and indexes): "
            f"{floor_rps:,.0f} rows/s; import / floor = {import_rps / floor_rps:.2f}"
        )

        # 3. Killed.
        killed = start_import(app, importer, path)
        resumed = killed_run(app, workers, killed, args, plain_s * BATCH / args.rows)
        row = wait_for(app, killed.job_id, ended, workers)
        killed_counts = import_counts(app, killed.import_id)
        killed_contacts = contact_counts(app)
    finally:
        workers.stop_all()
        if created:
            from portal.extensions import db

            with app.app_context():
                db.engine.dispose()
            drop_pg()

    p50, worst = pct(resumed, 50), max(resumed)
    print(
        f"moved again after a kill: p50 {p50:.1f} s, max {worst:.1f} s "
        f"-> {verdict(worst, args.resume_seconds)} "
        f"(target <= {args.resume_seconds:g} s)"
    )
    print(
        f"killed run: {row.status}, picked up {row.resumes} times, "
        f"{row.errors} errors; {killed_counts}; {killed_contacts}"
    )
    expected = {"contacts": args.rows, "phones": args.rows, "emails": args.rows}
    same = (
        row.status == "done"
        and killed_counts == plain_counts
        and killed_counts["created"] == args.rows
        and killed_contacts == plain_contacts == expected
    )
    print(
        f"end counts equal the uninterrupted run's, every row created once: "
        f"{'PASS' if same else 'FAIL'}"
    )
    ok = same and worst <= args.resume_seconds
    print(f"summary: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
