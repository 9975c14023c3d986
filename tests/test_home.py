"""The home page made for each role, its blocks, and the signals that make
an open home fetch a block again (pushed through the real Redis hub)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Contact, ContactStatus, Notification, Team, TeamMember
from portal.models.base import utcnow
from portal.models.task import Task
from portal.realtime.hub import channel_of
from tests import factories


@pytest.fixture
def agent(ctx):
    return factories.make_user("attendant", name="Ana Agent", teams=["north"])


def _contact(owner, name: str, **values) -> Contact:
    contact = factories.make_contact(owner=owner, name=name)
    for key, value in values.items():
        setattr(contact, key, value)
    db.session.commit()
    return contact


def _section(html: str, block: str) -> str:
    match = re.search(rf'<section id="home-{block}".*?</section>', html, re.S)
    assert match, f"no {block} block"
    return match.group(0)


def test_an_agents_home_shows_who_and_what_needs_them(client, auth, agent):
    _contact(agent, "Nina New", status=ContactStatus.NEW)
    _contact(agent, "Una Unattended", status=ContactStatus.ASSIGNED, attended_at=None)
    _contact(
        agent,
        "Olga Old",
        status=ContactStatus.IN_PROGRESS,
        attended_at=utcnow(),
        last_activity_at=utcnow() - timedelta(days=10),
    )
    _contact(agent, "Walter Won", status=ContactStatus.WON, attended_at=utcnow())
    someone = factories.make_user("attendant", name="Other Agent")
    _contact(someone, "Not Mine", status=ContactStatus.NEW)
    for title, due in [
        ("Late call", utcnow() - timedelta(hours=1)),
        ("Next week", utcnow() + timedelta(days=7)),
    ]:
        db.session.add(
            Task(
                account_id=agent.account_id,
                title=title,
                assignee_id=agent.id,
                due_at=due,
            )
        )
    db.session.commit()

    auth.login(agent)
    html = client.get("/").get_data(as_text=True)
    attention = _section(html, "attention")
    assert "Nina New" in attention and "Una Unattended" in attention
    assert "Olga Old" in attention  # open too long
    assert "Walter Won" not in attention and "Not Mine" not in attention
    tasks = _section(html, "tasks")
    assert "Late call" in tasks and "overdue" in tasks
    assert "Next week" not in tasks
    assert 'id="home-queue"' not in html  # a supervisor's block
    # Each block alone, as its live refresh fetches it.
    block = client.get("/home/tasks").get_data(as_text=True)
    assert block.lstrip().startswith('<section id="home-tasks"')
    assert client.get("/home/queue").status_code == 404
    assert client.get("/home/nothing").status_code == 404


def test_a_supervisors_home_counts_link_to_the_lists_behind_them(client, auth, ctx):
    manager = factories.make_user("manager", name="Mara Manager", units=["north"])
    for n in range(3):
        factories.make_contact(unassigned=True, name=f"Waiting {n}")
    auth.login(manager)
    html = client.get("/").get_data(as_text=True)
    queue = _section(html, "queue")
    links = dict(re.findall(r'href="([^"]+)" data-count="(\d+)"', queue))
    unassigned = next(url for url in links if "owner=unassigned" in url)
    assert links[unassigned] == "3"
    listed = client.get(unassigned.replace("&amp;", "&")).get_data(as_text=True)
    assert all(f"Waiting {n}" in listed for n in range(3))
    assert 'id="home-tasks"' in html and 'id="home-attention"' not in html


def test_reception_lands_on_the_walk_in_entry(client, auth, ctx):
    auth.login(factories.make_user("reception"))
    html = client.get("/").get_data(as_text=True)
    assert 'href="/contacts/new"' in html and "Enter a walk-in customer" in html


def test_the_ranking_screen_has_no_blocks(client, auth, ctx):
    auth.login(factories.make_user("ranking"))
    html = client.get("/").get_data(as_text=True)
    assert 'id="home-' not in html
    assert client.get("/home/tasks").status_code == 404


def _signals(listener, block: str = "") -> list[tuple[int, str]]:
    """(user id, fragment) of the home signals pushed since the last look,
    of `block` only when named."""
    found = []
    wanted = f'id="home-{block}-signal"' if block else "-signal"
    while (message := listener.get_message(timeout=0.2)) is not None:
        body = json.loads(message["data"])
        if "t" in body and wanted in body["t"]:
            found.append((body["u"], body["t"]))
    return found


def test_giving_taking_and_finishing_tasks_signal_the_homes(
    client, auth, redis_client, run_jobs, ctx
):
    coordinator = factories.make_user("coordinator", name="Cora", teams=["north"])
    ana = factories.make_user("attendant", name="Ana", teams=["north"])
    bruno = factories.make_user("attendant", name="Bruno", teams=["north"])
    team = db.session.scalar(select(Team).where(Team.key == "north"))
    db.session.get(TeamMember, (team.id, coordinator.id)).is_coordinator = True
    db.session.commit()
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis_client))
    listener.get_message(timeout=1)

    auth.login(coordinator)
    client.post("/tasks", data={"title": "Team job", "assignee": f"team:{team.id}"})
    run_jobs()  # the "given" job tells, then signals
    signals = _signals(listener, "tasks")
    assert {user for user, _html in signals} == {ana.id, bruno.id}
    html = signals[0][1]
    assert 'id="home-tasks-signal"' in html and 'hx-get="/home/tasks"' in html
    assert 'hx-swap-oob="true"' in html

    task = db.session.scalar(select(Task))
    auth.login(ana)
    assert client.post(f"/tasks/{task.id}/take").status_code == 303
    assert {u for u, _h in _signals(listener, "tasks")} >= {bruno.id}  # left his list
    assert client.post(f"/tasks/{task.id}/done").status_code == 303
    assert {u for u, _h in _signals(listener, "tasks")} == {ana.id, coordinator.id}


def test_an_assignment_signals_the_new_owners_home(client, auth, redis_client, ctx):
    admin = factories.make_user("admin")
    agent = factories.make_user("attendant", name="Ana")
    contact = factories.make_contact(unassigned=True, name="Walk In")
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis_client))
    listener.get_message(timeout=1)
    auth.login(admin)
    response = client.post(f"/contacts/{contact.id}/assign", data={"user_id": agent.id})
    assert response.status_code in (200, 303)
    signals = _signals(listener, "attention")
    assert (agent.id, signals[0][1]) in signals
    assert 'id="home-attention-signal"' in signals[0][1]


def test_unread_mentions_show_and_a_new_one_signals_the_home(
    client, auth, agent, redis_client
):
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis_client))
    listener.get_message(timeout=1)
    db.session.add(
        Notification(
            account_id=agent.account_id,
            user_id=agent.id,
            kind="mention",
            data={"by": "Mara", "contact_name": "Big <b>Deal</b>"},
            url="/contacts/1",
        )
    )
    db.session.commit()  # the notifications' commit hook signals the home
    signals = _signals(listener)
    assert any(
        user == agent.id and 'id="home-mentions-signal"' in html
        for user, html in signals
    )
    auth.login(agent)
    mentions = _section(client.get("/").get_data(as_text=True), "mentions")
    assert "Mara" in mentions and "Big &lt;b&gt;Deal&lt;/b&gt;" in mentions
    assert client.get("/home/mentions").status_code == 200
