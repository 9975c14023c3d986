"""Automatic task rules: composed with every field checked, fired in jobs
exactly once per event (a job run twice gives one task), for the assignee
the rule names; no job at all when no rule listens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select

from portal.contacts import service as contacts
from portal.extensions import db
from portal.models import Lead, Offer, Team, TeamMember
from portal.models.base import utcnow
from portal.models.task import RuleFiring, Task, TaskRule
from portal.redis_conn import get_redis
from portal.roulette import decisions
from portal.tasks import firing, rules
from tests import factories


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def queued(app) -> int:
    return Queue(app.config["RQ_QUEUE"], connection=get_redis()).count


@pytest.fixture(autouse=True)
def _forget_listening():
    """Each test's rules start unheard (the per-process memory of whether
    an account has rules for an event)."""
    rules._listening.clear()
    yield
    rules._listening.clear()


@pytest.fixture
def manager(ctx):
    return factories.make_user("manager", name="Mara Manager", units=["north"])


def _rule(client, **form) -> None:
    response = client.post("/tasks/rules", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"event": "rain"}, "event", "Pick the event that sets the rule off."),
        (
            {"event": "status_changed"},
            "status",
            "Pick the status that sets the rule off.",
        ),
        ({"event": "no_activity", "days": "0"}, "days", "from 1 to 365"),
        ({"event": "no_activity", "days": "x"}, "days", "from 1 to 365"),
        ({"event": "lead_created", "origin": "carrier pigeon"}, "origin", "Pick"),
        ({"event": "lead_created", "department_id": "999"}, "department_id", "Pick"),
        ({"event": "contact_assigned", "assignee": "user:999"}, "assignee", "Pick"),
        ({"event": "contact_assigned", "assignee": "boss"}, "assignee", "Pick"),
        ({"event": "contact_assigned", "title": ""}, "title", "Give the task a title."),
        ({"event": "contact_assigned", "due_hours": "-1"}, "due_hours", "hours"),
    ],
)
def test_a_rule_is_checked_field_by_field(client, auth, manager, form, field, message):
    auth.login(manager)
    data = {"title": "Call", "assignee": "owner", **form}
    response = client.post("/tasks/rules", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html and message in html
    assert count(TaskRule) == 0


def test_only_those_who_compose_rules_see_the_page(client, auth, ctx):
    for role in ("attendant", "coordinator", "seller", "media"):
        auth.login(factories.make_user(role))
        assert client.get("/tasks/rules").status_code == 403
        assert client.post("/tasks/rules", data={"event": "x"}).status_code == 403
    auth.login(factories.make_user("admin"))
    assert client.get("/tasks/rules").status_code == 200


def test_a_status_change_gives_the_owner_a_task_once(
    app, client, auth, manager, run_jobs
):
    agent = factories.make_user("seller", name="Sam Seller", units=["north"])
    contact = factories.make_contact(owner=agent, name="Big Deal")
    contacts.set_status(agent, contact.id, "assigned")
    assert queued(app) == 0  # no rule listens: no job at all
    auth.login(manager)
    _rule(
        client,
        event="status_changed",
        status="won",
        title="Send the welcome kit",
        due_hours="24",
        assignee="owner",
    )
    contacts.set_status(agent, contact.id, "in_progress")
    run_jobs()
    assert count(Task) == 0  # not the status the rule wants
    contacts.set_status(agent, contact.id, "won", "signed")
    run_jobs()
    task = db.session.scalar(select(Task))
    assert (task.title, task.assignee_id, task.contact_id) == (
        "Send the welcome kit",
        agent.id,
        contact.id,
    )
    assert task.created_by_id is None  # given by a rule
    assert timedelta(hours=23) < task.due_at - utcnow() <= timedelta(hours=24)
    entry_id = db.session.scalar(select(RuleFiring.event_key)).split(":")[1]
    assert firing.status_changed(int(entry_id)) == 0  # the job again: nothing
    assert count(Task) == 1


def test_an_assignment_gives_the_owners_coordinator_a_task(client, auth, ctx, run_jobs):
    admin = factories.make_user("admin")
    coordinator = factories.make_user("coordinator", name="Cora", teams=["north"])
    agent = factories.make_user("attendant", name="Ana", teams=["north"])
    team = db.session.scalar(select(Team).where(Team.key == "north"))
    db.session.get(TeamMember, (team.id, coordinator.id)).is_coordinator = True
    db.session.commit()
    contact = factories.make_contact(unassigned=True, name="Walk In")
    auth.login(admin)
    _rule(client, event="contact_assigned", title="Check on Ana", assignee="owner_lead")
    client.post(f"/contacts/{contact.id}/assign", data={"user_id": agent.id})
    run_jobs()
    task = db.session.scalar(select(Task))
    assert (task.assignee_id, task.contact_id) == (coordinator.id, contact.id)
    assert firing.contacts_assigned([contact.id]) == 0  # once per hand-over


def test_a_lead_rule_with_conditions(client, auth, manager):
    auth.login(manager)
    team = factories.make_user("attendant", teams=["inbound"]) and db.session.scalar(
        select(Team).where(Team.key == "inbound")
    )
    _rule(
        client,
        event="lead_created",
        origin="web",
        title="Call within the hour",
        due_hours="1",
        assignee=f"team:{team.id}",
    )
    contact = factories.make_contact(unassigned=True, name="Lead Person")
    leads = [
        Lead(account_id=contact.account_id, contact_id=contact.id, origin=origin)
        for origin in ("web", "store")
    ]
    db.session.add_all(leads)
    db.session.commit()
    assert firing.lead_created(leads[1].id) == 0  # a store lead: no match
    assert firing.lead_created(leads[0].id) == 1
    assert firing.lead_created(leads[0].id) == 0
    task = db.session.scalar(select(Task))
    assert (task.team_id, task.assignee_id) == (team.id, None)


def test_no_activity_fires_once_per_idle_stretch(client, auth, manager):
    agent = factories.make_user("seller", units=["north"])
    idle = factories.make_contact(owner=agent, name="Quiet One")
    busy = factories.make_contact(owner=agent, name="Busy One")
    idle.last_activity_at = utcnow() - timedelta(days=3)
    db.session.commit()
    auth.login(manager)
    _rule(client, event="no_activity", days="2", title="Nudge", assignee="owner")
    assert firing.idle_sweep() == 1
    assert firing.idle_sweep() == 0  # still the same idle stretch
    assert [t.contact_id for t in db.session.scalars(select(Task))] == [idle.id]
    assert busy.id not in [t.contact_id for t in db.session.scalars(select(Task))]
    # Activity, then idle again: a new stretch fires again.
    idle.last_activity_at = utcnow() + timedelta(seconds=1)
    db.session.commit()
    assert firing.idle_sweep() == 0  # active now
    idle.last_activity_at = utcnow() - timedelta(days=5) + timedelta(seconds=2)
    db.session.commit()
    db.session.execute(
        RuleFiring.__table__.update().values(created_at=utcnow() - timedelta(days=6))
    )
    db.session.commit()
    assert firing.idle_sweep() == 1


def test_pause_and_delete(client, auth, manager):
    auth.login(manager)
    _rule(client, event="contact_assigned", title="Hello", assignee="owner")
    rule = db.session.scalar(select(TaskRule))
    assert (
        client.post(f"/tasks/rules/{rule.id}/active", data={"active": "0"}).status_code
        == 303
    )
    db.session.expire_all()
    assert db.session.get(TaskRule, rule.id).active is False
    assert client.post(f"/tasks/rules/{rule.id}/delete").status_code == 303
    assert count(TaskRule) == 0
    assert client.post("/tasks/rules/424242/delete").status_code == 404


def test_a_lead_through_the_api_and_an_offer_that_runs_out_fire_their_rules(
    app, client, auth, manager, run_jobs
):
    agent = factories.make_user("attendant", name="Ana", departments=["sales"])
    auth.login(manager)
    _rule(
        client, event="lead_created", title="Welcome call", assignee=f"user:{agent.id}"
    )
    _rule(
        client, event="offer_expired", title="Why missed?", assignee=f"user:{agent.id}"
    )
    key = factories.make_api_key("leads:write")
    response = client.post(
        "/api/v1/leads",
        json={"name": "Api Person", "phone": "+5511912340000"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code in (200, 201, 202), response.get_data(as_text=True)
    run_jobs()
    assert [t.title for t in db.session.scalars(select(Task))] == ["Welcome call"]

    lead = db.session.scalar(select(Lead))
    offer = Offer(
        account_id=lead.account_id,
        lead_id=lead.id,
        agent_id=agent.id,
        reason="turn",
        expires_at=utcnow() - timedelta(seconds=1),
    )
    db.session.add(offer)
    db.session.commit()
    assert decisions.expire_offer(offer.id)
    run_jobs()
    titles = sorted(t.title for t in db.session.scalars(select(Task)))
    assert titles == ["Welcome call", "Why missed?"]
