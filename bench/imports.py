"""Import-rate benchmark (issue #3): 100,000 CSV rows in under a minute.

Seeds 50 sellers and 5,000 existing contacts, writes a 100,000-row CSV (about
2 % bad rows: invalid email, unknown owner, no name; about 5 % duplicates of
existing contacts, matched by phone in another format; half the rows name an
owner), then times what the importer waits for: the upload check, the
preview, and the import job run by a real RQ worker, end to end.

    .venv/bin/python -m bench.imports                  # SQLite + embedded Redis
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.imports
    .venv/bin/python -m bench.imports --rows 20000 --on-duplicate skip
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from bench.common import make_app, verdict

SELLERS = 50
EXISTING = 5_000
TARGET_SECONDS = 60


def seed(app) -> int:
    """The importer (an admin), sellers, departments and existing contacts;
    returns the importer's id."""
    from sqlalchemy import insert, select

    from portal.extensions import db
    from portal.models import Contact, Role, User
    from portal.models.base import utcnow
    from portal.org import structure
    from portal.settings.service import current_account

    with app.app_context():
        account = current_account()
        for key in ("sales", "rentals"):
            structure.get_or_create_department(account, key)
        roles = {r.key: r.id for r in db.session.scalars(select(Role))}
        users = [
            {
                "account_id": account.id,
                "email": "importer@bench.example",
                "name": "Bench Importer",
                "role_id": roles["admin"],
                "status": "active",
                "session_version": 1,
            }
        ] + [
            {
                "account_id": account.id,
                "email": f"seller{n:02d}@bench.example",
                "name": f"Seller {n:02d}",
                "role_id": roles["seller"],
                "status": "active",
                "is_restricted": True,
                "session_version": 1,
            }
            for n in range(SELLERS)
        ]
        db.session.execute(insert(User), users)
        now = utcnow()
        contacts = [
            {
                "account_id": account.id,
                "name": f"Existing {n}",
                "name_search": f"existing {n}",
                "phone": f"+55 21 9{n:08d}",
                "phone_e164": f"+55219{n:08d}",
                "phone_national": f"219{n:08d}",
                "tags": [],
                "custom": {},
                "status": "new",
                "origin": "manual",
                "created_at": now,
                "updated_at": now,
                "last_activity_at": now,
            }
            for n in range(EXISTING)
        ]
        db.session.execute(insert(Contact), contacts)
        db.session.commit()
        return db.session.scalar(
            select(User.id).where(User.email == "importer@bench.example")
        )


def write_csv(path: Path, rows: int) -> dict[str, int]:
    """The benchmark file; returns how many rows of each kind it holds."""
    kinds = {"bad": 0, "duplicate": 0, "owned": 0}
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["Name", "Phone", "Email", "Owner", "Department", "Tags", "Budget"]
        )
        for i in range(rows):
            name = f"Person {i}"
            phone = f"(11) 9{i:08d}"
            email = f"person{i}@bench.example"
            owner = f"seller{i % SELLERS:02d}@bench.example" if i % 2 else ""
            if i % 20 == 3:
                # An existing contact's phone, written differently.
                phone, email = f"21 9{(i // 20) % EXISTING:08d}", ""
                kinds["duplicate"] += 1
            if i % 100 == 7:
                email = "not-an-email"
            elif i % 200 == 57:
                owner = "nobody@bench.example"
            elif i % 200 == 157:
                name = ""
            if i % 100 == 7 or i % 200 in (57, 157):
                kinds["bad"] += 1
            elif owner:
                kinds["owned"] += 1
            department = "sales" if i % 3 else "rentals"
            out.writerow([name, phone, email, owner, department, "lead;bench", "500k"])
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--on-duplicate", choices=("update", "skip"), default="update")
    args = parser.parse_args()

    from rq import Queue, SimpleWorker
    from sqlalchemy import func, select
    from werkzeug.datastructures import FileStorage

    from portal.extensions import db
    from portal.imports import service
    from portal.models import AssignmentLog, Contact, ContactImport, User
    from portal.redis_conn import get_redis
    from portal.settings.service import current_account

    app = make_app()
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    importer_id = seed(app)
    path = Path(app.instance_path) / "bench-import.csv"
    kinds = write_csv(path, args.rows)
    size_mb = path.stat().st_size / (1024 * 1024)
    print(
        f"database: {db_kind}; rows: {args.rows} ({size_mb:.1f} MB); "
        f"bad: {kinds['bad']}; duplicates: {kinds['duplicate']}; "
        f"with owner: {kinds['owned']}; existing contacts: {EXISTING}; "
        f"duplicates: {args.on_duplicate}"
    )

    with app.test_request_context():
        importer = db.session.get(User, importer_id)
        start = time.perf_counter()
        with path.open("rb") as fh:
            imp = service.store_upload(
                current_account(), importer, FileStorage(fh, filename="bench.csv")
            )
        upload_s = time.perf_counter() - start
        print(
            f"upload check (encoding {imp.encoding}, delimiter {imp.delimiter!r}, "
            f"{imp.total} rows counted): {upload_s:.2f} s"
        )
        mapping = [service.form_value(target) for target in imp.mapping]
        service.save_mapping(imp, mapping, args.on_duplicate)

        start = time.perf_counter()
        result = service.preview(imp, importer)
        preview_s = time.perf_counter() - start
        print(
            f"preview ({result.checked} rows checked, "
            f"{result.projected('error')} errors projected): {preview_s:.2f} s"
        )

        start, cpu_start = time.perf_counter(), time.process_time()
        service.start_import(imp)
        queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
        # SimpleWorker runs the job in this process, so its CPU time is ours.
        SimpleWorker([queue], connection=get_redis()).work(burst=True)
        job_s = time.perf_counter() - start
        job_cpu_s = time.process_time() - cpu_start
        db.session.expire_all()
        imp = db.session.get(ContactImport, imp.id)
        assert imp.status == "done", imp.status
        contacts = db.session.scalar(select(func.count()).select_from(Contact))
        logs = db.session.scalar(select(func.count()).select_from(AssignmentLog))

    total_s = upload_s + job_s
    print(
        f"import job: {imp.processed} rows -> {imp.created} created, "
        f"{imp.updated} updated, {imp.skipped} skipped, {imp.failed} failed; "
        f"{contacts} contacts and {logs} assignment logs in the database"
    )
    # On a shared machine the wall time includes waiting for a CPU.
    print(f"import job CPU time (this process): {job_cpu_s:.2f} s")
    print(
        f"import job: {job_s:.2f} s = {imp.processed / job_s:,.0f} rows/s; "
        f"upload check + job: {total_s:.2f} s -> "
        f"{verdict(total_s, TARGET_SECONDS)} (target < {TARGET_SECONDS} s "
        f"for 100,000 rows)"
    )


if __name__ == "__main__":
    main()
