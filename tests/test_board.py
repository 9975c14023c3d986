"""The live roulette board: each agent's state, the waiting leads, the last
hour's offers, within the viewer's teams; and the debounced nudge that makes
open boards fetch again."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.board import live
from portal.extensions import db
from portal.models import Offer, Team, TeamMember
from portal.models.base import utcnow
from portal.realtime.hub import channel_of
from portal.roulette import switch
from tests import factories


@pytest.fixture
def floor(ctx):
    coordinator = factories.make_user("coordinator", name="Cora", teams=["north"])
    team = db.session.scalar(select(Team).where(Team.key == "north"))
    db.session.get(TeamMember, (team.id, coordinator.id)).is_coordinator = True
    db.session.commit()
    people = {
        name: factories.make_user("attendant", name=name, teams=["north"])
        for name in ("Ana", "Bruno", "Carla", "Dora")
    }
    outsider = factories.make_user("attendant", name="Elsewhere", teams=["south"])
    return coordinator, people, outsider


def _states(html: str) -> dict[str, str]:
    return {
        name: state
        for state, name in re.findall(
            r'data-state="(\w+)">(?:<bdi>)?([^<\n]+?)(?:</bdi>)?\s*<span', html
        )
    }


def test_the_board_shows_each_agents_state_and_the_queue(client, auth, floor):
    coordinator, people, outsider = floor
    factories.go_online(people["Ana"])  # available
    factories.go_online(people["Carla"], available=False)  # online, switch off
    lead = factories.make_lead(source="site")
    db.session.add(
        Offer(
            account_id=lead.account_id,
            lead_id=lead.id,
            agent_id=people["Bruno"].id,
            reason="turn",
            expires_at=utcnow() + timedelta(seconds=30),
        )
    )
    db.session.add(
        Offer(
            account_id=lead.account_id,
            lead_id=lead.id,
            agent_id=people["Carla"].id,
            state="declined",
            decline_reason="break",
            reason="turn",
            expires_at=utcnow() - timedelta(seconds=5),
        )
    )
    waiting = factories.make_lead(source="portal")
    waiting.created_at = utcnow() - timedelta(seconds=90)
    db.session.commit()

    auth.login(coordinator)
    response = client.get("/roulette/board")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _states(html) == {
        "Bruno": "answering",
        "Ana": "available",
        "Carla": "away",
        "Dora": "offline",
    }
    assert "Elsewhere" not in html  # not in the viewer's teams
    assert 'data-agents="available">1 available' in html
    assert f'data-lead-id="{waiting.id}"' in html
    assert re.search(r"waiting (9\d|1[0-9]{2}) s", html)
    assert 'data-offers="pending">1 open' in html
    assert 'data-reason="break">On a break<' in html
    fragment = client.hx_get("/roulette/board").get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="roulette-board"')


def test_agents_may_not_see_the_board(client, auth, floor):
    _coordinator, people, _outsider = floor
    auth.login(people["Ana"])
    assert client.get("/roulette/board").status_code == 403


def test_a_change_nudges_the_watching_supervisors_once_per_window(floor, redis_client):
    coordinator, people, _outsider = floor
    factories.go_online(coordinator, available=False)
    factories.go_online(people["Ana"])
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis_client))
    listener.get_message(timeout=1)
    redis_client.delete(f"roleta:board:{coordinator.account_id}")
    live.changed(coordinator.account_id)
    live.changed(coordinator.account_id)  # within the window: no second nudge
    nudges = []
    while (message := listener.get_message(timeout=0.3)) is not None:
        body = json.loads(message["data"])
        if 'id="board-signal"' in body.get("t", ""):
            nudges.append(body["u"])
    assert nudges == [coordinator.id]  # the supervisor only, once


def test_the_roulette_nudges_the_board_when_a_switch_changes(floor, redis_client):
    coordinator, people, _outsider = floor
    factories.go_online(coordinator, available=False)
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis_client))
    listener.get_message(timeout=1)
    redis_client.delete(f"roleta:board:{coordinator.account_id}")
    switch.set_available(people["Dora"], True)
    nudged = []
    while (message := listener.get_message(timeout=0.3)) is not None:
        body = json.loads(message["data"])
        if 'id="board-signal"' in body.get("t", ""):
            nudged.append(body["u"])
    assert nudged == [coordinator.id]
