"""Contact import jobs."""

from __future__ import annotations

from contextlib import suppress

from jobs import app_context
from portal.models import ContactImport

# Two workers must never import the same file at once; the lock outlives a
# batch by far and is renewed after each one.
LOCK_SECONDS = 300


def run_import(import_id: int) -> dict | None:
    """Import the CSV of `import_id`, resuming after the rows a previous run
    committed; a finished import is left alone, and a run that finds another
    one working on the same import returns at once."""
    with app_context():
        from redis.exceptions import LockError
        from rq import get_current_job

        from portal.imports.runner import run_import as run
        from portal.redis_conn import get_redis

        lock = get_redis().lock(f"import:{import_id}:running", timeout=LOCK_SECONDS)
        if not lock.acquire(blocking=False):
            return None
        job = get_current_job()

        def progress(imp: ContactImport) -> None:
            lock.extend(LOCK_SECONDS, replace_ttl=True)
            if job is not None:
                job.meta.update(
                    status=str(imp.status), processed=imp.processed, total=imp.total
                )
                job.save_meta()

        try:
            imp = run(import_id, progress)
        finally:
            # A lock that expired meanwhile is nobody's to release.
            with suppress(LockError):
                lock.release()
        if imp is None:
            return None
        return {
            "status": str(imp.status),
            "processed": imp.processed,
            "created": imp.created,
            "updated": imp.updated,
            "skipped": imp.skipped,
            "failed": imp.failed,
        }
