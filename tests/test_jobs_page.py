"""The admins' jobs page (/admin/jobs): who may see it, what it lists, its
counts beside RQ's registries, the workers, Resume and Cancel.

Against the suite's real database, Redis and RQ (a burst worker runs the
jobs); a browser watches the page move in tests/browser/test_jobs_page.py.
"""

from __future__ import annotations

import re

import pytest
from rq import SimpleWorker

from portal.background import kinds, runs
from portal.background.kinds import Kind
from portal.background.lease import Failed, Lease
from portal.cli.worker import AppContextWorker
from portal.extensions import db
from portal.models import Account, BackgroundJob, User
from portal.queue import get_queue
from portal.settings.service import current_account
from tests import factories

STEPS = "test_steps"
BROKEN = "test_broken"


def _steps(job: BackgroundJob, lease: Lease) -> None:
    done = job.processed
    while done < job.total:
        done = min(done + 5, job.total)
        lease.checkpoint(done)
        db.session.commit()


def _broken(job: BackgroundJob, lease: Lease) -> None:
    raise Failed("file_gone")


@pytest.fixture
def page_kinds(app):
    kinds.register(Kind(key=STEPS, label="Counting", work=_steps))
    kinds.register(Kind(key=BROKEN, label="Broken", work=_broken))
    yield
    for key in (STEPS, BROKEN):
        kinds._kinds.pop(key, None)


@pytest.fixture
def admin(ctx) -> User:
    return factories.make_user("admin", email="admin@example.com", name="Ada Admin")


def _queue(kind: str, by: User | None, total: int = 20) -> BackgroundJob:
    return runs.queue_job(
        kind,
        account_id=current_account().id,
        started_by_id=by.id if by else None,
        total=total,
    )


def _rows(html: str) -> dict[int, tuple[str, str]]:
    """job id: (kind, status), from the rows' data attributes."""
    found = re.findall(
        r'data-job-id="(\d+)" data-job-kind="([^"]+)" data-job-status="([^"]+)"', html
    )
    return {int(job_id): (kind, status) for job_id, kind, status in found}


def _count(html: str, status: str) -> int:
    return int(re.search(rf'data-count-status="{status}">(\d+)<', html).group(1))


def _rq(html: str) -> tuple[int, int, int]:
    text = re.search(r'id="jobs-rq">([^<]*)<', html).group(1)
    return tuple(int(n) for n in re.findall(r"\d+", text))


@pytest.mark.parametrize(
    "role",
    ["coordinator", "manager", "attendant", "seller", "reception", "media", "ranking"],
)
def test_other_roles_get_404_everywhere(client, auth, ctx, page_kinds, role):
    job = _queue(STEPS, None)
    auth.login(factories.make_user(role))
    assert client.get("/admin/jobs").status_code == 404
    assert client.post(f"/admin/jobs/{job.id}/cancel").status_code == 404
    assert client.post(f"/admin/jobs/{job.id}/resume").status_code == 404
    db.session.expire_all()
    assert db.session.get(BackgroundJob, job.id).status == "queued"
    assert "/admin/jobs" not in client.get("/").get_data(as_text=True)


def test_signed_out_visitors_are_sent_to_sign_in(client, ctx):
    response = client.get("/admin/jobs")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_the_page_lists_jobs_with_counts_that_agree_with_rq(
    client, auth, admin, page_kinds, run_jobs
):
    first = _queue(STEPS, admin, total=12)
    second = _queue(STEPS, None, total=7)
    auth.login(admin)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/admin/jobs"' in home  # in the admin menu

    html = client.get("/admin/jobs").get_data(as_text=True)
    assert _rows(html) == {first.id: (STEPS, "queued"), second.id: (STEPS, "queued")}
    assert _count(html, "queued") == 2
    assert _rq(html) == (2, 0, 0)  # both waiting in RQ's queue as well
    assert "Ada Admin" in html and "the system" in html
    assert "0 of 12" in html
    assert "No worker is running" in html

    run_jobs()
    db.session.expire_all()  # the test shares the views' session
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert _rows(html) == {first.id: (STEPS, "done"), second.id: (STEPS, "done")}
    assert (_count(html, "queued"), _count(html, "done")) == (0, 2)
    assert _rq(html) == (0, 0, 0)
    assert "12 of 12" in html and "7 of 7" in html

    # Filters: by status and by kind, and a fragment for htmx.
    fragment = client.hx_get("/admin/jobs?status=failed").get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="jobs-board"')
    assert _rows(fragment) == {}
    assert 'hx-get="/admin/jobs?status=failed' in fragment  # polls what it shows
    assert len(_rows(client.get(f"/admin/jobs?kind={STEPS}").get_data(True))) == 2


def test_unknown_filters_are_named(client, auth, admin):
    auth.login(admin)
    response = client.get("/admin/jobs?status=lost&kind=nope")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is no such status." in html
    assert "There is no such kind of job." in html


def test_a_running_job_shows_on_its_worker(client, auth, admin, page_kinds):
    """A worker mid-job, as RQ records one: its execution, the started
    registry, the job's lease in the database."""
    job = _queue(STEPS, admin)
    queue = get_queue()
    worker = SimpleWorker([queue], connection=queue.connection, name="test-worker")
    worker.register_birth()
    try:
        rq_job, _queue_of = queue.dequeue_any(
            [queue], None, connection=queue.connection
        )
        worker.prepare_execution(rq_job)
        Lease.take(job)
        auth.login(admin)
        html = client.get("/admin/jobs").get_data(as_text=True)
        assert _rows(html)[job.id] == (STEPS, "running")
        assert _count(html, "running") == 1
        assert _rq(html) == (0, 1, 0)
        worker_row = re.search(r'data-worker="test-worker">(.*?)</tr>', html, re.S)
        assert f"#{job.id}" in worker_row.group(1)
        assert "No worker is running" not in html
    finally:
        worker.register_death()  # (the suite empties Redis after each test)


def test_resume_a_failed_job_then_409_once_it_runs(
    client, auth, admin, page_kinds, run_jobs
):
    job = _queue(BROKEN, admin)
    run_jobs()
    db.session.expire_all()
    auth.login(admin)
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert _rows(html)[job.id] == (BROKEN, "failed")
    assert "The uploaded file is gone" not in html  # not an import's reason
    assert f'action="/admin/jobs/{job.id}/resume"' in html
    assert f'action="/admin/jobs/{job.id}/cancel"' not in html

    response = client.hx_post(f"/admin/jobs/{job.id}/resume", data={"status": ""})
    assert response.status_code == 200
    board = response.get_data(as_text=True)
    assert "The job goes on from where it stopped." in board
    assert _rows(board)[job.id] == (BROKEN, "queued")
    assert _rq(board) == (1, 0, 0)

    again = client.post(f"/admin/jobs/{job.id}/resume")
    assert again.status_code == 409
    assert "Only a failed job can be resumed; this one is waiting." in again.get_data(
        as_text=True
    )


def test_cancel_a_waiting_job_then_409(client, auth, admin, page_kinds, run_jobs):
    job = _queue(STEPS, admin)
    auth.login(admin)
    response = client.post(f"/admin/jobs/{job.id}/cancel")
    assert response.status_code == 303
    assert run_jobs() == 0  # its RQ job went with it
    db.session.expire_all()
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert _rows(html)[job.id] == (STEPS, "cancelled")
    assert "Stopped at 0 of 20; what was done stays." in html
    assert "The job was cancelled before it started." in html  # the flash

    again = client.post(f"/admin/jobs/{job.id}/cancel")
    assert again.status_code == 409
    assert "there is nothing to cancel" in again.get_data(as_text=True)
    assert client.post(f"/admin/jobs/{job.id}/resume").status_code == 409


def test_cancel_a_running_job_asks_it_to_stop(client, auth, admin, page_kinds):
    job = _queue(STEPS, admin)
    Lease.take(job)
    auth.login(admin)
    response = client.hx_post(f"/admin/jobs/{job.id}/cancel")
    assert response.status_code == 200
    board = response.get_data(as_text=True)
    assert "The job stops after the batch it is on" in board
    assert "stopping after this batch" in board
    assert f'action="/admin/jobs/{job.id}/cancel"' not in board  # asked once
    assert _rows(board)[job.id] == (STEPS, "running")


def test_another_accounts_job_is_404(client, auth, admin, page_kinds):
    other = Account(name="Other")
    db.session.add(other)
    db.session.commit()
    theirs = runs.queue_job(STEPS, account_id=other.id, started_by_id=None, total=5)
    auth.login(admin)
    assert theirs.id not in _rows(client.get("/admin/jobs").get_data(as_text=True))
    assert client.post(f"/admin/jobs/{theirs.id}/cancel").status_code == 404
    assert client.post(f"/admin/jobs/{theirs.id}/resume").status_code == 404
    assert client.post("/admin/jobs/2147483648/cancel").status_code == 404
    db.session.expire_all()
    assert db.session.get(BackgroundJob, theirs.id).status == "queued"


def test_a_worker_forgotten_by_redis_is_listed_again_at_its_heartbeat(
    app, client, auth, admin
):
    queue = get_queue()
    worker = AppContextWorker([queue], connection=queue.connection, app=app)
    worker.register_birth()
    try:
        auth.login(admin)
        assert f'data-worker="{worker.name}"' in client.get("/admin/jobs").get_data(
            as_text=True
        )
        queue.connection.flushdb()  # what a Redis restart without a save does
        assert "No worker is running" in client.get("/admin/jobs").get_data(True)
        worker.heartbeat()
        html = client.get("/admin/jobs").get_data(as_text=True)
        assert f'data-worker="{worker.name}"' in html
        assert f"on {worker.hostname}, process {worker.pid}" in html
    finally:
        worker.register_death()
