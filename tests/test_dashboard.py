"""The supervision dashboard: figures on seeded data with known answers,
each equal to the count of the contact list it links to; a coordinator sees
only their teams; a bad range is named."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ContactStatus, Lead, Offer, Team, TeamMember
from portal.models.base import utcnow
from tests import factories


@pytest.fixture
def seeded(ctx):
    coordinator = factories.make_user("coordinator", name="Cora", teams=["north"])
    team = db.session.scalar(select(Team).where(Team.key == "north"))
    db.session.get(TeamMember, (team.id, coordinator.id)).is_coordinator = True
    ana = factories.make_user("attendant", name="Ana", teams=["north"])
    bruno = factories.make_user("attendant", name="Bruno", teams=["north"])
    outsider = factories.make_user("attendant", name="Olga Outside", teams=["south"])
    now = utcnow()
    plan = {
        ana: [
            ("new", 0, 0),
            ("in_progress", 0, 0),
            ("in_progress", 0, 5),  # idle 5 days: open too long
            ("won", 0, 0),
            ("won", 40, 40),  # won long ago: not in a 30-day range
        ],
        bruno: [("assigned", 0, 0), ("lost", 0, 0)],
        outsider: [("new", 0, 0)],
    }
    for owner, contacts in plan.items():
        for n, (status, created_days, idle_days) in enumerate(contacts):
            contact = factories.make_contact(owner=owner, name=f"{owner.name} {n}")
            contact.status = ContactStatus(status)
            contact.created_at = now - timedelta(days=created_days)
            contact.last_activity_at = now - timedelta(days=idle_days)
    db.session.flush()
    # First responses of Ana: 20 s and 90 s in the range, 10 min long ago.
    for n, (seconds, days) in enumerate([(20, 1), (90, 2), (600, 50)]):
        answered = factories.make_contact(owner=ana, name=f"Answered {n}")
        answered.attended_at = now - timedelta(days=days)
        answered.first_response_seconds = seconds
    # Offers: Ana declines two leads of one contact and accepts one (60 s);
    # Bruno lets one run out; an offer 40 days ago counts in no recent range.
    first = factories.make_contact(owner=ana, name="Ana offered")
    plan = [
        (ana, first, "declined", 0, None),
        (ana, first, "declined", 0, None),
        (ana, first, "accepted", 0, 60),
        (
            bruno,
            factories.make_contact(owner=bruno, name="Bruno offered"),
            "expired",
            0,
            None,
        ),
        (ana, factories.make_contact(owner=ana, name="Ana old"), "declined", 40, None),
    ]
    for agent, contact, state, days, speed in plan:
        lead = Lead(
            account_id=agent.account_id,
            contact_id=contact.id,
            state="assigned",
            accepted_by_id=agent.id if state == "accepted" else None,
            accepted_at=now if state == "accepted" else None,
            speed_to_lead_seconds=speed,
        )
        db.session.add(lead)
        db.session.flush()
        db.session.add(
            Offer(
                account_id=agent.account_id,
                lead_id=lead.id,
                agent_id=agent.id,
                state=state,
                reason="turn",
                offered_at=now - timedelta(days=days),
                expires_at=now - timedelta(days=days) + timedelta(seconds=30),
            )
        )
    db.session.commit()
    return coordinator, ana, bruno, outsider


def _figures(html: str) -> dict[tuple[int, str], tuple[int, str]]:
    found = re.findall(r'<tr data-user-id="(\d+)">(.*?)</tr>', html, re.S)
    figures = {}
    for user_id, row in found:
        for metric, count, href in re.findall(
            r'data-metric="(\w+)" data-count="(\d+)" href="([^"]+)"', row
        ):
            figures[(int(user_id), metric)] = (int(count), html_lib.unescape(href))
    return figures


def test_the_figures_have_the_known_answers_and_equal_their_lists(client, auth, seeded):
    coordinator, ana, bruno, outsider = seeded
    auth.login(coordinator)
    response = client.get("/dashboard")
    assert response.status_code == 200
    figures = _figures(response.get_data(as_text=True))
    assert {user for user, _metric in figures} == {coordinator.id, ana.id, bruno.id}
    expected = {
        (ana.id, "open"): 8,
        (ana.id, "open_too_long"): 1,
        (ana.id, "received"): 9,
        (ana.id, "first_response"): 2,
        (ana.id, "response_0"): 1,  # under 30 s
        (ana.id, "response_1"): 1,  # 30 s to 2 min
        (ana.id, "response_4"): 0,  # the 10-minute one is out of range
        (ana.id, "declined"): 1,  # two offers, one contact
        (ana.id, "accepted"): 1,
        (ana.id, "speed"): 1,
        (bruno.id, "expired"): 1,
        (bruno.id, "declined"): 0,
        (ana.id, "won"): 1,
        (ana.id, "lost"): 0,
        (bruno.id, "open"): 2,
        (bruno.id, "received"): 3,
        (bruno.id, "lost"): 1,
    }
    for key, count in expected.items():
        assert figures[key][0] == count, key
    assert ">1 min<" in response.get_data(as_text=True)  # Ana's speed
    assert "55 s" in response.get_data(as_text=True)  # her first response
    # Every figure clicks through to a list of exactly that many contacts.
    for (_user, metric), (count, href) in figures.items():
        listed = client.get(href).get_data(as_text=True)
        rows = re.findall(r'<tr id="contact-\d+"', listed)
        assert len(rows) == count, (metric, href)


def test_a_coordinator_sees_only_their_teams(client, auth, seeded):
    coordinator, _ana, _bruno, outsider = seeded
    auth.login(coordinator)
    html = client.get("/dashboard").get_data(as_text=True)
    assert "Olga Outside" not in html
    auth.login(factories.make_user("admin"))
    assert "Olga Outside" in client.get("/dashboard").get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-05-10&to=2026-05-01", "The end comes before the start."),
        ("from=2020-01-01&to=2026-01-01", "Choose at most two years."),
        ("team=999999", "Pick from the list."),
    ],
)
def test_a_bad_range_or_team_is_named(client, auth, seeded, query, message):
    auth.login(seeded[0])
    response = client.get(f"/dashboard?{query}")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_agents_may_not_see_the_dashboard(client, auth, seeded):
    auth.login(seeded[1])
    assert client.get("/dashboard").status_code == 403
