"""The contact import as a background job (portal.background).

The import's own row keeps its status in step with its job's: every change
of the job's status is copied here in the same transaction.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from portal.background.kinds import Kind
from portal.background.lease import Failed, Lease
from portal.extensions import db
from portal.imports.progress import FAILURE_ERROR, FAILURE_GONE, FAILURE_TEXTS
from portal.imports.runner import run_import
from portal.imports.service import JOB_TIMEOUT_SECONDS
from portal.models import BackgroundJob, ContactImport, ImportStatus, JobKind


def _work(job: BackgroundJob, lease: Lease) -> None:
    def checkpoint(imp: ContactImport) -> None:
        lease.checkpoint(imp.processed, imp.total)

    imp = run_import(job.subject_id, checkpoint)
    if imp is None:
        raise Failed(FAILURE_GONE)
    if imp.status == ImportStatus.FAILED:
        raise Failed(imp.message or FAILURE_ERROR)
    if imp.status != ImportStatus.DONE:
        # Not queued nor running (only a job's status change moves it).
        raise Failed(FAILURE_ERROR)


def _on_status(job: BackgroundJob) -> None:
    imp = db.session.get(ContactImport, job.subject_id)
    if imp is None:
        return
    imp.status = ImportStatus(job.status)
    imp.finished_at = job.finished_at
    if job.status == ImportStatus.FAILED:
        imp.message = job.reason
    elif job.status == ImportStatus.QUEUED:
        imp.message = None


def _url(job: BackgroundJob) -> str:
    return f"/contacts/import/{job.subject_id}"


IMPORT_KIND = Kind(
    key=JobKind.IMPORT,
    label=_l("Contact import"),
    work=_work,
    on_status=_on_status,
    url=_url,
    reasons=FAILURE_TEXTS,
    timeout_seconds=JOB_TIMEOUT_SECONDS,
)
