"""The import job's work: the file in batches of a thousand rows, one
transaction each.

Each batch inserts its new contacts with one multi-row INSERT, updates
duplicates by primary key in one executemany, writes the assignment log and
timeline rows in bulk, and commits together with the import's counters and
the offset of the next record. A run that stops part-way is resumed by the
next run from that offset; a finished import is left alone.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from itertools import islice

from flask_babel import force_locale
from sqlalchemy import select, text, update

from portal.contacts.ownership import (
    HandedOver,
    OwnerChange,
    announce,
    hand_over,
    record_owners,
)
from portal.extensions import db
from portal.imports import csvfile
from portal.imports.progress import FAILURE_FILE_GONE, FAILURE_IMPORTER
from portal.imports.rows import Action, RowChecker, RowPlan
from portal.imports.service import report_path, upload_path
from portal.models import (
    Account,
    AssignmentHow,
    Contact,
    ContactImport,
    HistoryEntry,
    ImportStatus,
    Notification,
    Origin,
    User,
)
from portal.models.base import utcnow

BATCH_SIZE = 1000
RUNNABLE = (ImportStatus.QUEUED, ImportStatus.RUNNING)

# Called inside each batch's transaction just before its commit (the job's
# lease renewal); raising there rolls the batch back and stops the run.
Checkpoint = Callable[[ContactImport], None]


def insert_values(plan: RowPlan, imp: ContactImport, now: datetime) -> dict:
    """The full row for a contact to create, normalised as create_contact does."""
    values = plan.values
    return {
        **values,
        "account_id": imp.account_id,
        "origin": Origin.IMPORT,
        "created_by_id": imp.user_id,
        "created_at": now,
        "updated_at": now,
        "last_activity_at": now,
        "assigned_at": now if values["owner_id"] else None,
    }


def run_import(
    import_id: int, checkpoint: Checkpoint | None = None
) -> ContactImport | None:
    """Import the file of `import_id` from where the last run stopped.

    Returns the import, or None when there is no such import. Does nothing
    for an import that is not queued or running. A file gone or an importer
    without the right fails the import here; any other error rolls the
    current batch back and is raised for the job to count (its tries, its
    failure: portal.imports.job).
    """
    imp = db.session.get(ContactImport, import_id)
    if imp is None or imp.status not in RUNNABLE:
        return imp
    importer = db.session.get(User, imp.user_id)
    if (
        importer is None
        or not importer.is_active
        or not importer.can("contacts.import")
    ):
        return _fail(imp, FAILURE_IMPORTER)
    source = upload_path(imp)
    if not source.exists():
        return _fail(imp, FAILURE_FILE_GONE)
    try:
        # The error report speaks the importer's language.
        with force_locale(importer.language or "en"):
            _run(imp, importer, checkpoint)
    except Exception:
        db.session.rollback()
        raise
    source.unlink(missing_ok=True)
    return imp


def _fail(imp: ContactImport, code: str) -> ContactImport:
    imp.status = ImportStatus.FAILED
    imp.message = code
    imp.finished_at = utcnow()
    db.session.commit()
    return imp


def _run(imp: ContactImport, importer: User, checkpoint: Checkpoint | None) -> None:
    account = db.session.get(Account, imp.account_id)
    checker = RowChecker(imp, importer, account)
    if not imp.report_name:
        imp.report_name = f"{uuid.uuid4().hex}-errors.csv"
    report = csvfile.ErrorReport(report_path(imp), imp.header, imp.report_bytes)
    imp.report_bytes = report.size
    imp.status = ImportStatus.RUNNING
    imp.message = None
    imp.finished_at = None
    imp.started_at = imp.started_at or utcnow()
    db.session.commit()

    fmt = csvfile.CsvFormat(imp.encoding, imp.delimiter)
    with closing(csvfile.open_records(upload_path(imp), fmt)) as records:
        next(records, None)  # the header
        # Records committed by an earlier run are read past, not redone.
        for _done in islice(records, imp.processed):
            pass
        while batch := list(islice(records, BATCH_SIZE)):
            plans = checker.plan(batch)
            counts = Counter(plan.action for plan in plans)
            handed, given = _apply(imp, plans, utcnow())
            report.add(
                [
                    (p.line, p.cells, p.error_text)
                    for p in plans
                    if p.action == Action.ERROR
                ]
            )
            imp.processed += len(batch)
            imp.created += counts[Action.CREATE]
            imp.updated += counts[Action.UPDATE]
            imp.skipped += counts[Action.SKIP]
            imp.failed += counts[Action.ERROR]
            imp.report_bytes = report.size
            if given:
                totals = Counter({int(k): v for k, v in (imp.assigned or {}).items()})
                totals.update(given)
                imp.assigned = {str(k): v for k, v in totals.items()}
            if checkpoint:
                checkpoint(imp)
            db.session.commit()
            announce(handed)
            checker.forget_pending()
            _refresh_statistics(imp.processed // BATCH_SIZE)
    _notify_owners(imp, importer)
    imp.status = ImportStatus.DONE
    imp.finished_at = utcnow()
    db.session.commit()


def _refresh_statistics(batches_done: int) -> None:
    """Let PostgreSQL's planner see the table the import is growing.

    A fresh table grows faster than autovacuum re-analyzes it; with stale
    statistics the duplicate lookups scan the whole table once per batch.
    """
    # After batches 1, 2, 4, 8, ...: whenever the table may have doubled.
    doubled = batches_done > 0 and batches_done & (batches_done - 1) == 0
    if doubled and db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE contact"))
        db.session.commit()


def _apply(
    imp: ContactImport,
    plans: list[RowPlan],
    now: datetime,
) -> tuple[HandedOver, Counter]:
    """Write one batch's creations, updates and owner changes; returns the
    hand-overs to announce after the commit and the number of contacts
    given to each owner."""
    creates = [p for p in plans if p.action == Action.CREATE]
    created_owned: list[OwnerChange] = []
    if creates:
        rows = [insert_values(plan, imp, now) for plan in creates]
        # A plain executemany: INSERT ... RETURNING of a thousand rows is
        # several times slower on PostgreSQL (and the ORM's bulk insert with
        # RETURNING runs a statement per row on SQLite).
        db.session.execute(Contact.__table__.insert(), rows)
        ids = (
            _created_ids(imp, now) if any(p.values["owner_id"] for p in creates) else {}
        )
        for plan in creates:
            owner_id = plan.values["owner_id"]
            if owner_id:
                contact_id = ids[
                    (plan.values["phone_e164"], plan.values["email_normalized"])
                ]
                created_owned.append(OwnerChange(contact_id, None, owner_id))
    # A new contact's owner came with its INSERT: nobody else could have
    # changed it, so only its log and timeline entry are left to write.
    record_owners(
        imp.account_id,
        created_owned,
        by_user_id=imp.user_id,
        how=AssignmentHow.IMPORT,
        now=now,
    )

    updates = [p for p in plans if p.action == Action.UPDATE and p.merged_into is None]
    changes: list[OwnerChange] = []
    history: list[dict] = []
    rows = []
    for plan in updates:
        values = {**plan.values, "id": plan.contact_id, "updated_at": now}
        owner_id = values.pop("owner_id", None)
        if owner_id and owner_id != plan.previous_owner_id:
            changes.append(
                OwnerChange(plan.contact_id, plan.previous_owner_id, owner_id)
            )
        rows.append(values)
        history.append(
            {
                "account_id": imp.account_id,
                "contact_id": plan.contact_id,
                "kind": "edit",
                "author_id": imp.user_id,
                "body": None,
                "data": {"how": "import", "import_id": imp.id},
                "created_at": now,
            }
        )
    # The owners first: the row's own status (when the file gives one)
    # is written after the hand-over's "new becomes assigned".
    handed = hand_over(
        imp.account_id,
        changes,
        by_user_id=imp.user_id,
        how=AssignmentHow.IMPORT,
        now=now,
        notify_each=False,
    )
    if rows:
        # Bulk UPDATE by primary key, one executemany per set of columns.
        db.session.execute(update(Contact), rows)
    if history:
        db.session.execute(HistoryEntry.__table__.insert(), history)
    given = Counter(c.to_user_id for c in created_owned + handed.changes)
    return handed, given


def _created_ids(imp: ContactImport, now: datetime) -> dict[tuple, int]:
    """The ids of the contacts this batch just created, by (phone, email).

    The batch's rows share the creation instant and creator; within a batch
    they are distinct by phone and by email (a later duplicate merges into
    the earlier row), so the pair names one row.
    """
    rows = db.session.execute(
        select(Contact.id, Contact.phone_e164, Contact.email_normalized).where(
            Contact.account_id == imp.account_id,
            Contact.created_at == now,
            Contact.created_by_id == imp.user_id,
            Contact.origin == Origin.IMPORT,
        )
    )
    return {(r.phone_e164, r.email_normalized): r.id for r in rows}


def _notify_owners(imp: ContactImport, importer: User) -> None:
    """One notification per owner for the whole import, not one per contact;
    the dedupe key makes a second run add none."""
    keys = {
        int(user_id): f"import:{imp.id}:{user_id}"
        for user_id, count in (imp.assigned or {}).items()
        if count and int(user_id) != importer.id
    }
    if not keys:
        return
    existing = set(
        db.session.scalars(
            select(Notification.dedupe_key).where(
                Notification.dedupe_key.in_(keys.values())
            )
        )
    )
    for user_id, key in keys.items():
        if key in existing:
            continue
        db.session.add(
            Notification(
                account_id=imp.account_id,
                user_id=user_id,
                kind="import",
                data={
                    "count": imp.assigned[str(user_id)],
                    "by": importer.name,
                    "import_id": imp.id,
                },
                url="/contacts?owner=me",
                dedupe_key=key,
            )
        )
