"""An import's run as its person sees it: start, resume, cancel, and the
state its progress page shows, all read from the import's background job
(portal.background.runs), the one place a job's rules live.
"""

from __future__ import annotations

from contextlib import suppress

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import update

from portal.background import runs
from portal.errors import Conflict, ValidationError
from portal.extensions import db
from portal.models import BackgroundJob, ContactImport, ImportStatus, JobKind, JobStatus

# Why a job stopped, kept as a code and worded when shown (in the reader's
# language, not the worker's).
FAILURE_IMPORTER = "importer"
FAILURE_FILE_GONE = "file_gone"
FAILURE_ERROR = runs.REASON_ERROR
FAILURE_GONE = "import_gone"
FAILURE_TEXTS = {
    FAILURE_FILE_GONE: _l("The uploaded file is gone. Upload it again."),
    FAILURE_IMPORTER: _l("Whoever started this import may no longer import contacts."),
    FAILURE_GONE: _l("The import was deleted."),
}


def job_of(imp: ContactImport) -> BackgroundJob | None:
    return runs.latest_for(JobKind.IMPORT, imp.id)


def start_import(imp: ContactImport) -> ContactImport:
    """Queue the import's job once (starting it again changes nothing); a
    failed import is resumed where it stopped.

    Raises ValidationError when the columns are not mapped yet.
    """
    if imp.status == ImportStatus.UPLOADED:
        raise ValidationError({"mapping": _("Map the columns first.")})
    if imp.status == ImportStatus.FAILED:
        job = job_of(imp)
        if job is not None:
            with suppress(Conflict):  # two clicks on "Resume": one resumes
                runs.resume(job)
            db.session.refresh(imp)
            return imp
    # Conditional update: two clicks on "Start" queue one job.
    won = db.session.execute(
        update(ContactImport)
        .where(
            ContactImport.id == imp.id,
            ContactImport.status.in_((ImportStatus.MAPPED, ImportStatus.FAILED)),
        )
        .values(status=ImportStatus.QUEUED, message=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if won:
        runs.queue_job(
            JobKind.IMPORT,
            account_id=imp.account_id,
            started_by_id=imp.user_id,
            subject_id=imp.id,
            total=imp.total,
        )
    db.session.refresh(imp)
    return imp


def cancel_import(imp: ContactImport) -> None:
    """Stop the import: at once while it waits, after the batch it is on
    while it runs (what was committed stays). Conflict once it has ended."""
    job = job_of(imp)
    if job is None:
        raise Conflict(_("This import has not started."))
    runs.cancel(job)
    db.session.refresh(imp)


def failure_message(imp: ContactImport, job: BackgroundJob | None) -> str | None:
    if imp.status != ImportStatus.FAILED:
        return None
    if job is not None and job.status == JobStatus.FAILED:
        return runs.reason_text(job)
    return str(
        FAILURE_TEXTS.get(imp.message or "") or runs.COMMON_REASONS[FAILURE_ERROR]
    )


def progress_percent(imp: ContactImport) -> int:
    if imp.status == ImportStatus.DONE:
        return 100
    if not imp.total:
        return 0
    return min(100, int(imp.processed * 100 / imp.total))


def is_finished(imp: ContactImport) -> bool:
    return imp.status in (
        ImportStatus.DONE,
        ImportStatus.FAILED,
        ImportStatus.CANCELLED,
    )


def is_started(imp: ContactImport) -> bool:
    return imp.status not in (ImportStatus.UPLOADED, ImportStatus.MAPPED)


def progress_context(imp: ContactImport) -> dict:
    """What the progress component shows: the import's counts and its job's
    state (a retry after an error waits as "queued" while the import still
    reads "running"; a cancel asked for shows until the batch ends)."""
    job = job_of(imp)
    finished = is_finished(imp)
    return {
        "imp": imp,
        "percent": progress_percent(imp),
        "finished": finished,
        "failure": failure_message(imp, job),
        "has_report": bool(imp.failed and imp.report_name),
        "retrying": bool(
            job is not None and job.status == JobStatus.QUEUED and job.errors
        ),
        "stopping": bool(not finished and job is not None and job.cancel_requested),
        "can_cancel": bool(
            not finished
            and job is not None
            and job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
            and not job.cancel_requested
        ),
    }
