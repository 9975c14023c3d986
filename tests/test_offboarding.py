"""Deleting a user without losing a thing: the heirs are checked, the user
is out at once, a background job deals their contacts (round-robin across a
team) and open tasks, resumes after a crash where it stopped, and the CLI
of CONTRACT drives it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.background import runs
from portal.background.lease import Lease
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import AssignmentLog, BackgroundJob, Contact, Team, User
from portal.models.base import utcnow
from portal.models.task import Task
from portal.settings.service import current_account
from portal.users import offboarding
from tests import factories


def owned(user: User) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Contact).where(Contact.owner_id == user.id)
    )


@pytest.fixture
def leaver(ctx):
    user = factories.make_user("attendant", name="Leo Leaver", teams=["north"])
    for n in range(7):
        factories.make_contact(owner=user, name=f"Customer {n}")
    db.session.add(
        Task(account_id=user.account_id, title="Call back", assignee_id=user.id)
    )
    db.session.commit()
    return user


@pytest.fixture
def heirs(ctx, leaver):
    return [
        factories.make_user("attendant", name=name, teams=["north"])
        for name in ("Ana Heir", "Bruno Heir")
    ]


def _team() -> Team:
    return db.session.scalar(select(Team).where(Team.key == "north"))


def test_round_robin_across_a_team_and_the_tasks_follow(leaver, heirs, run_jobs):
    admin = factories.make_user("admin")
    job = offboarding.delete_user(
        current_account(), leaver, to_team=_team(), acting_user=admin
    )
    db.session.expire_all()
    assert db.session.get(User, leaver.id).status == "deleted"  # out at once
    assert job.total == 7
    run_jobs()
    db.session.expire_all()
    job = db.session.get(BackgroundJob, job.id)
    assert (job.status, job.processed) == ("done", 7)
    assert job.params["contacts"] == 7 and job.params["tasks"] == 1
    ana, bruno = heirs
    assert (owned(leaver), owned(ana), owned(bruno)) == (0, 4, 3)
    assert db.session.scalar(select(Task)).assignee_id == ana.id
    logs = db.session.scalars(
        select(AssignmentLog).where(AssignmentLog.from_user_id == leaver.id)
    ).all()
    assert len(logs) == 7 and {log.how for log in logs} == {"reassignment"}
    assert {log.by_user_id for log in logs} == {admin.id}
    # Run again: nothing left to move, nothing moved twice.
    assert runs.perform(job.id) is None
    assert (owned(ana), owned(bruno)) == (4, 3)


def test_a_run_that_died_goes_on_from_its_last_batch(leaver, heirs, monkeypatch):
    monkeypatch.setattr(offboarding, "BATCH_SIZE", 3)
    ana, bruno = heirs
    job = offboarding.delete_user(current_account(), leaver, to_team=_team())
    original = Lease.checkpoint
    calls = []

    def die_after_the_first_batch(lease, processed, total=None):
        original(lease, processed, total)
        calls.append(processed)
        if len(calls) == 2:
            raise SystemExit("killed")  # the batch's commit never happens

    monkeypatch.setattr(Lease, "checkpoint", die_after_the_first_batch)
    with pytest.raises(SystemExit):
        runs.perform(job.id)
    db.session.rollback()
    monkeypatch.setattr(Lease, "checkpoint", original)
    assert (owned(leaver), owned(ana) + owned(bruno)) == (4, 3)
    # The worker is gone: its lease lapses and the next run goes on.
    row = db.session.get(BackgroundJob, job.id)
    row.lease_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert runs.perform(job.id)["status"] == "done"
    # The same deal as an uninterrupted run: 4 and 3, each contact once.
    assert (owned(leaver), owned(ana), owned(bruno)) == (0, 4, 3)
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AssignmentLog)
            .where(AssignmentLog.from_user_id == leaver.id)
        )
        == 7
    )


def test_heirs_are_checked_and_nothing_changes_when_none_fits(leaver, ctx):
    account = current_account()
    suspended = factories.make_user("attendant", name="Sue Spended")
    suspended.status = "suspended"
    media = factories.make_user("media", name="Max Media")
    db.session.commit()
    for kwargs, message in [
        ({}, "Choose one person or one team."),
        ({"to_user": leaver}, "Leo Leaver cannot receive contacts."),
        ({"to_user": suspended}, "Sue Spended cannot receive contacts."),
        ({"to_user": media}, "Max Media cannot receive contacts."),
        ({"to_team": _team()}, "Nobody in"),
    ]:
        with pytest.raises(ValidationError) as caught:
            offboarding.delete_user(account, leaver, **kwargs)
        assert message in caught.value.fields["to"]
    db.session.expire_all()
    assert db.session.get(User, leaver.id).status == "active"
    assert db.session.scalar(select(func.count()).select_from(BackgroundJob)) == 0


def test_the_cli_deletes_and_waits_for_the_counts(app, leaver, heirs, run_jobs):
    cli = app.test_cli_runner()
    ana, _bruno = heirs
    result = cli.invoke(args=["delete-user", leaver.email, "--to", ana.email])
    assert result.exit_code == 0, result.output
    job_id = int(result.output.strip())
    run_jobs()
    db.session.expire_all()
    assert db.session.get(BackgroundJob, job_id).status == "done"
    assert owned(ana) == 7
    again = cli.invoke(args=["delete-user", leaver.email, "--to", ana.email])
    assert again.exit_code == 1 and "deleted already" in again.output
    unknown = cli.invoke(args=["delete-user", "nobody@example.com", "--to", ana.email])
    assert unknown.exit_code == 1 and "EMAIL" in unknown.output


def test_suspend_and_unsuspend_from_the_cli(app, heirs):
    cli = app.test_cli_runner()
    ana, _bruno = heirs
    assert cli.invoke(args=["suspend-user", ana.email]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(User, ana.id).status == "suspended"
    assert cli.invoke(args=["unsuspend-user", ana.email]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(User, ana.id).status == "active"
    assert cli.invoke(args=["unsuspend-user", ana.email]).exit_code == 1


def test_the_admin_deletes_from_the_dialog_and_follows_the_job(
    client, auth, leaver, heirs, run_jobs
):
    admin = factories.make_user("admin")
    auth.login(admin)
    listing = client.get("/admin/users").get_data(as_text=True)
    assert f'href="/admin/users/{leaver.id}/delete"' in listing
    assert f'href="/admin/users/{admin.id}/delete"' not in listing  # not oneself
    dialog = client.get(f"/admin/users/{leaver.id}/delete").get_data(as_text=True)
    assert "7 contacts and 1 open tasks are theirs" in dialog
    assert f'value="user:{leaver.id}"' not in dialog  # not their own heir
    bad = client.post(f"/admin/users/{leaver.id}/delete", data={"to": ""})
    assert bad.status_code == 422
    assert "Choose one person or one team." in bad.get_data(as_text=True)
    team = _team()
    response = client.post(
        f"/admin/users/{leaver.id}/delete", data={"to": f"team:{team.id}"}
    )
    assert response.status_code == 303
    page_url = f"/admin/users/{leaver.id}/reassignment"
    assert response.headers["Location"].endswith(page_url)
    waiting = client.get(page_url).get_data(as_text=True)
    assert 'data-status="queued"' in waiting and 'hx-trigger="every 1s"' in waiting
    run_jobs()
    db.session.expire_all()
    done = client.hx_get(page_url).get_data(as_text=True)
    assert 'data-status="done"' in done and "hx-trigger" not in done
    assert "Done: 7 contacts and 1 tasks moved." in done
    assert client.get(f"/admin/users/{leaver.id}/delete").status_code == 404
    jobs = client.get("/admin/jobs").get_data(as_text=True)
    assert 'data-job-kind="reassign" data-job-status="done"' in jobs


def test_only_user_admins_delete(client, auth, leaver, heirs):
    auth.login(factories.make_user("manager"))
    assert client.get(f"/admin/users/{leaver.id}/delete").status_code == 403
    assert client.post(f"/admin/users/{leaver.id}/delete", data={}).status_code == 403
