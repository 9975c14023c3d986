"""Tasks: giving one (every field checked, nothing half-written), in the
user's time zone; my tasks in order; a team's task taken by exactly one
member; done and undo; told when given and when due, once each."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from portal.errors import Conflict
from portal.extensions import db
from portal.models import Notification, Team, TeamMember, User
from portal.models.base import utcnow
from portal.models.task import Task
from portal.queue import get_queue
from portal.tasks import lists, notify, service
from tests import factories


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def notifications(user, kind: str) -> list[Notification]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Notification).where(
                Notification.user_id == user.id, Notification.kind == kind
            )
        )
    )


@pytest.fixture
def coordinator(ctx):
    return factories.make_user(
        "coordinator", name="Cora Coord", teams=["north"], time_zone="America/Sao_Paulo"
    )


@pytest.fixture
def agents(ctx, coordinator):
    return [
        factories.make_user("attendant", name=name, teams=["north"])
        for name in ("Ana Agent", "Bruno Agent")
    ]


def _lead_the_team(coordinator) -> Team:
    team = db.session.scalar(select(Team).where(Team.key == "north"))
    member = db.session.get(TeamMember, (team.id, coordinator.id))
    member.is_coordinator = True
    db.session.commit()
    return team


def test_a_task_due_in_my_time_zone(client, auth, coordinator):
    auth.login(coordinator)
    response = client.post(
        "/tasks",
        data={
            "title": "Call <b>back</b>",
            "due_at": "2031-03-10T09:00",
            "assignee": f"user:{coordinator.id}",
            "notes": "line one\nline two",
        },
    )
    assert response.status_code == 303
    task = db.session.scalar(select(Task))
    # 09:00 in São Paulo (UTC-3) is 12:00 UTC.
    assert task.due_at == datetime(2031, 3, 10, 12, 0, tzinfo=UTC)
    assert (task.assignee_id, task.created_by_id) == (coordinator.id, coordinator.id)
    page = client.get("/tasks").get_data(as_text=True)
    assert "Call &lt;b&gt;back&lt;/b&gt;" in page and "<b>back" not in page
    assert "9:00" in page  # shown on the user's clock
    assert "America/Sao_Paulo" in page
    assert 'id="tasks-later"' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "Give the task a title."),
        ("title", "x" * 201, "At most 200 characters."),
        ("due_at", "31/12/2026 17:30", "Enter a date and time like 2026-12-31T17:30."),
        ("assignee", "", "Choose whom the task is for."),
        ("assignee", "user:999999", "You may not give tasks to this person or team."),
        ("assignee", "team:abc", "You may not give tasks to this person or team."),
        ("notes", "n" * 5001, "At most 5000 characters."),
        ("contact_id", "424242", "There is no such contact, or you may not see it."),
    ],
)
def test_every_field_is_checked_and_nothing_is_written(
    client, auth, coordinator, field, value, message
):
    auth.login(coordinator)
    data = {"title": "Follow up", "assignee": f"user:{coordinator.id}", field: value}
    response = client.post("/tasks", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html
    assert message in html
    assert count(Task) == 0


def test_an_agent_may_not_give_tasks_to_a_colleague(client, auth, agents):
    ana, bruno = agents
    auth.login(ana)
    response = client.post(
        "/tasks", data={"title": "x", "assignee": f"user:{bruno.id}"}
    )
    assert response.status_code == 422
    assert count(Task) == 0
    page = client.get("/tasks").get_data(as_text=True)
    assert f'value="user:{bruno.id}"' not in page  # not offered either


def test_past_due_is_allowed_and_shows_overdue(client, auth, coordinator, run_jobs):
    auth.login(coordinator)
    response = client.post(
        "/tasks",
        data={
            "title": "Yesterday's call",
            "due_at": "2020-01-01T10:00",
            "assignee": f"user:{coordinator.id}",
        },
    )
    assert response.status_code == 303
    html = client.get("/tasks").get_data(as_text=True)
    assert 'id="tasks-overdue"' in html and "overdue" in html
    run_jobs()
    # Given overdue by its own holder: nobody is told it is due.
    assert notifications(coordinator, notify.KIND_DUE) == []
    assert db.session.scalar(select(Task)).due_notified


def test_a_coordinator_gives_a_task_and_the_agent_is_told_once(
    client, auth, coordinator, agents, run_jobs
):
    ana, _bruno = agents
    _lead_the_team(coordinator)
    auth.login(coordinator)
    response = client.post(
        "/tasks", data={"title": "Call Maria", "assignee": f"user:{ana.id}"}
    )
    assert response.status_code == 303
    run_jobs()
    task = db.session.scalar(select(Task))
    assert notify.notify_given(task.id) == 0  # the job again: nothing new
    told = notifications(ana, notify.KIND_GIVEN)
    assert len(told) == 1
    assert told[0].data == {"task_id": task.id, "title": "Call Maria"}
    assert told[0].url == f"/tasks#task-{task.id}"
    assert notifications(coordinator, notify.KIND_GIVEN) == []  # not the giver
    # Ana sees it in her list; Bruno does not, and gets 404 on its actions.
    auth.login(ana)
    assert "Call Maria" in client.get("/tasks").get_data(as_text=True)
    auth.login(_bruno)
    assert "Call Maria" not in client.get("/tasks").get_data(as_text=True)
    assert client.post(f"/tasks/{task.id}/done").status_code == 404
    assert client.post(f"/tasks/{task.id}/take").status_code == 404


def test_a_team_task_is_taken_by_exactly_one_member(
    app, client, auth, coordinator, agents, run_jobs
):
    ana, bruno = agents
    team = _lead_the_team(coordinator)
    auth.login(coordinator)
    client.post(
        "/tasks", data={"title": "Whoever is free", "assignee": f"team:{team.id}"}
    )
    run_jobs()
    task = db.session.scalar(select(Task))
    assert task.team_id == team.id and task.assignee_id is None
    assert len(notifications(ana, notify.KIND_GIVEN)) == 1
    assert len(notifications(bruno, notify.KIND_GIVEN)) == 1

    # Both press "Take it" at the same moment.
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def take_as(user_id: int) -> None:
        with app.app_context():
            person = db.session.get(User, user_id)
            mine = db.session.get(Task, task.id)
            barrier.wait()
            try:
                service.take(person, mine)
                results[person.name] = "won"
            except Conflict as exc:
                results[person.name] = str(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=take_as, args=(u.id,)) for u in (ana, bruno)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values())[-1] == "won"
    winner = next(name for name, result in results.items() if result == "won")
    loser = next(name for name in results if name != winner)
    assert results[loser] == f"{winner} took this task first."
    db.session.expire_all()
    task = db.session.get(Task, task.id)
    assert task.assignee_id == (ana.id if winner == ana.name else bruno.id)

    # Over HTTP the loser gets 409 with the same words.
    auth.login(ana if loser == ana.name else bruno)
    response = client.post(f"/tasks/{task.id}/take")
    assert response.status_code == 409
    assert f"{winner} took this task first." in response.get_data(as_text=True)


def test_done_and_undo(client, auth, coordinator):
    auth.login(coordinator)
    client.post(
        "/tasks", data={"title": "Send the quote", "assignee": f"user:{coordinator.id}"}
    )
    task = db.session.scalar(select(Task))
    response = client.hx_post(f"/tasks/{task.id}/done")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="task-lists"')
    assert 'id="tasks-done"' in html and "Done: “Send the quote”." in html
    assert client.post(f"/tasks/{task.id}/done").status_code == 409
    response = client.post(f"/tasks/{task.id}/undo")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Task, task.id).done_at is None
    assert client.post(f"/tasks/{task.id}/undo").status_code == 409


def test_due_is_told_once_by_the_job_or_the_sweep(client, auth, coordinator, agents):
    ana, _bruno = agents
    _lead_the_team(coordinator)
    auth.login(coordinator)
    client.post(
        "/tasks",
        data={
            "title": "Soon",
            "due_at": "2031-01-01T08:00",
            "assignee": f"user:{ana.id}",
        },
    )
    task = db.session.scalar(select(Task))
    scheduled = ScheduledJobRegistry(queue=get_queue()).get_job_ids(cleanup=False)
    assert len(scheduled) == 1  # the due job, at the due time
    assert notify.notify_due(task.id) == 0  # early: not due yet
    task.due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert notify.notify_due(task.id) == 1
    assert notify.notify_due(task.id) == 0  # run twice: told once
    assert notify.sweep_due() == 0
    assert len(notifications(ana, notify.KIND_DUE)) == 1

    # A due job lost with Redis: the sweep tells instead; a done task, nobody.
    lost, done = (
        Task(
            account_id=ana.account_id,
            title=title,
            assignee_id=ana.id,
            due_at=utcnow() - timedelta(minutes=5),
        )
        for title in ("lost", "done")
    )
    done.done_at = utcnow()
    db.session.add_all([lost, done])
    db.session.commit()
    assert notify.sweep_due() == 1
    assert notify.sweep_due() == 0
    assert {n.data["title"] for n in notifications(ana, notify.KIND_DUE)} == {
        "Soon",
        "lost",
    }


def test_a_task_on_a_contact_needs_it_visible_to_both(
    client, auth, coordinator, agents
):
    ana, bruno = agents
    _lead_the_team(coordinator)
    anas = factories.make_contact(owner=ana, name="Ana's customer")
    auth.login(coordinator)
    response = client.post(
        "/tasks",
        data={
            "title": "Check in",
            "contact_id": str(anas.id),
            "assignee": f"user:{bruno.id}",
        },
    )
    assert response.status_code == 422
    assert "Bruno Agent may not see this contact" in response.get_data(as_text=True)
    assert count(Task) == 0
    response = client.post(
        "/tasks",
        data={
            "title": "Check in",
            "contact_id": str(anas.id),
            "assignee": f"user:{ana.id}",
        },
    )
    assert response.status_code == 303
    assert [row.task.title for row in lists.contact_tasks(ana, anas.id)] == ["Check in"]
    auth.login(ana)
    page = client.get("/tasks").get_data(as_text=True)
    assert f'href="/contacts/{anas.id}"' in page


def test_my_tasks_in_order(ctx, coordinator):
    now = datetime(2031, 6, 1, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo
    for title, due in [
        ("tomorrow", now + timedelta(days=1)),
        ("this evening", now + timedelta(hours=8)),  # 20:00 local: today
        ("late", now - timedelta(hours=2)),
        ("after midnight", now + timedelta(hours=12)),  # 00:00 local: tomorrow
        ("whenever", None),
    ]:
        db.session.add(
            Task(
                account_id=coordinator.account_id,
                title=title,
                assignee_id=coordinator.id,
                due_at=due,
            )
        )
    db.session.commit()
    mine = lists.my_tasks(coordinator, now)
    titles = lambda rows: [r.task.title for r in rows]  # noqa: E731
    assert titles(mine.overdue) == ["late"]
    assert titles(mine.today) == ["this evening"]
    assert titles(mine.later) == ["after midnight", "tomorrow"]
    assert titles(mine.undated) == ["whenever"]
    assert mine.overdue[0].overdue and not mine.today[0].overdue


def test_signed_out_visitors_are_sent_to_sign_in(client, ctx):
    assert client.get("/tasks").status_code == 302
    assert client.post("/tasks", data={"title": "x"}).status_code in (302, 400)


def test_the_contact_profile_lists_its_tasks(client, auth, coordinator, agents):
    ana, bruno = agents
    contact = factories.make_contact(owner=ana, name="Ana's customer")
    db.session.add(
        Task(
            account_id=ana.account_id,
            title="Visit <them>",
            assignee_id=ana.id,
            contact_id=contact.id,
        )
    )
    db.session.commit()
    auth.login(ana)
    profile = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert f'hx-get="/contacts/{contact.id}/tasks"' in profile
    fragment = client.get(f"/contacts/{contact.id}/tasks").get_data(as_text=True)
    assert "Visit &lt;them&gt;" in fragment
    assert f'href="/tasks?contact_id={contact.id}"' in fragment
    form = client.get(f"/tasks?contact_id={contact.id}").get_data(as_text=True)
    assert f'name="contact_id" value="{contact.id}"' in form
    auth.login(bruno)  # may not see Ana's contact
    assert client.get(f"/contacts/{contact.id}/tasks").status_code == 404
