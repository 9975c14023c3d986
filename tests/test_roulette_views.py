"""The agent's roulette endpoints as CONTRACT describes them: POST /presence
and POST /offers/<id>/accept|decline, plus what every page carries for them
(the switch, the live connection, the trays)."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from portal.extensions import db
from portal.models import AgentState, Contact, Lead, Offer
from portal.models.base import utcnow
from portal.realtime.hub import channel_of
from portal.redis_conn import get_redis
from portal.roulette import pool, push, routing
from portal.settings.service import current_account
from tests import factories


def _state(user) -> AgentState | None:
    db.session.expire_all()
    return db.session.get(AgentState, user.id)


def _offer_to(*agents, department: str = "sales", **lead_options) -> Offer:
    """Roulette on, every agent online; a lead offered to the first of them
    (the longest waiting)."""
    for agent in agents:
        factories.go_online(agent)
    lead = factories.make_lead(department=department, **lead_options)
    placed = routing.route_lead(lead.id)
    assert placed is not None
    return db.session.get(Offer, placed.offer_id)


def _agents(n: int = 2, department: str = "sales"):
    factories.enable_roulette()
    return [
        factories.make_user("attendant", name=f"Agent {i}", departments=[department])
        for i in range(1, n + 1)
    ]


# --- POST /presence -------------------------------------------------------


def test_switch_on_and_off_persists_and_answers_the_switch(client, auth, ctx):
    agent = factories.make_user("attendant")
    auth.login(agent)

    response = client.hx_post("/presence", data={"available": "1"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert 'id="presence"' in html and 'aria-checked="true"' in html
    # No socket yet: the switch is on but says it is still connecting.
    assert 'data-online="false"' in html and "Available (connecting" in html
    assert 'name="available" value="0"' in html  # the next press switches off
    assert _state(agent).available is True

    response = client.hx_post("/presence", data={"available": "0"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'aria-checked="false"' in html and "Unavailable" in html
    assert _state(agent).available is False


def test_switch_says_available_once_the_socket_is_live(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.go_online(agent, available=False)  # a live socket, switch off
    auth.login(agent)
    html = client.hx_post("/presence", data={"available": "1"}).get_data(as_text=True)
    assert 'data-online="true"' in html and "(connecting" not in html


def test_plain_form_post_without_js_redirects_back_with_303(client, auth, ctx):
    agent = factories.make_user("attendant")
    auth.login(agent)
    response = client.post(
        "/presence",
        data={"available": "1"},
        headers={"Referer": "http://localhost/contacts"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/contacts")
    assert _state(agent).available is True


def test_a_foreign_referrer_is_not_followed(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    response = client.post(
        "/presence",
        data={"available": "1"},
        headers={"Referer": "https://evil.example/phish"},
    )
    assert response.status_code == 303
    assert "evil.example" not in response.headers["Location"]


@contextmanager
def _redis_unreachable(app):
    """The app's Redis client swapped for one to a port nobody listens on:
    every command fails with a real connection error, as in an outage."""
    kept = app.extensions["roleta_redis"]
    app.extensions["roleta_redis"] = redis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.5
    )
    try:
        yield
    finally:
        app.extensions["roleta_redis"].close()
        app.extensions["roleta_redis"] = kept


def test_the_switch_is_saved_and_answered_during_a_redis_outage(client, auth, ctx, app):
    first, second = _agents()
    offer = _offer_to(first, second)
    auth.login(first)

    with _redis_unreachable(app):
        off = client.hx_post("/presence", data={"available": "0"})
        on = client.hx_post("/presence", data={"available": "1"})

    # Switching off withdrew the pending offer and queued its lead; the
    # tabs and routers hear of it once Redis is back (reconnect, sweep).
    assert off.status_code == 200
    assert 'aria-checked="false"' in off.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "cancelled"
    assert db.session.get(Lead, offer.lead_id).state == "queued"
    # Switching on is saved too; whether the socket is live cannot be
    # known, so the switch says it is still connecting.
    assert on.status_code == 200
    assert 'data-online="false"' in on.get_data(as_text=True)
    assert _state(first).available is True


def test_presence_without_csrf_is_refused(client, auth, ctx):
    agent = factories.make_user("attendant")
    auth.login(agent)
    response = client.post("/presence", data={"available": "1"}, csrf=False)
    assert response.status_code == 400
    state = _state(agent)
    assert state is None or state.available is False


def test_presence_needs_leads_receive(client, auth, ctx):
    receptionist = factories.make_user("reception")
    auth.login(receptionist)
    response = client.hx_post("/presence", data={"available": "1"})
    assert response.status_code == 403
    assert _state(receptionist) is None


def test_presence_needs_sign_in(client, ctx):
    response = client.hx_post("/presence", data={"available": "1"})
    assert response.status_code == 401
    assert "/login" in response.headers["HX-Redirect"]


@pytest.mark.parametrize("value", ["", "yes", "2", "true"])
def test_bad_value_is_422_naming_available(client, auth, ctx, value):
    agent = factories.make_user("attendant")
    auth.login(agent)
    response = client.hx_post("/presence", data={"available": value})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert "“available” takes 1 (available) or 0 (unavailable)" in html
    state = _state(agent)
    assert state is None or state.available is False


# --- what pages carry -----------------------------------------------------


def test_agent_pages_carry_the_switch_the_socket_and_the_trays(client, auth, ctx):
    agent = factories.make_user("attendant")
    auth.login(agent)
    html = client.get("/").get_data(as_text=True)
    assert 'id="presence"' in html and 'name="csrf_token"' in html
    assert 'aria-checked="false"' in html
    assert 'hx-ws:connect="/ws"' in html and "pauseOnBackground" in html
    assert "hx-ws-4.0.1.min.js" in html
    assert 'id="offer-tray"' in html and 'id="notification-tray"' in html
    # Showing a page writes nothing: the agent's state row is made on demand.
    assert _state(agent) is None


def test_switch_on_shows_on_every_page_after(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.go_online(agent)
    auth.login(agent)
    html = client.get("/").get_data(as_text=True)
    assert 'aria-checked="true"' in html and 'data-online="true"' in html


def test_users_who_do_not_receive_leads_get_no_switch_but_the_socket(client, auth, ctx):
    auth.login(factories.make_user("reception"))
    html = client.get("/").get_data(as_text=True)
    assert 'id="presence"' not in html
    assert 'hx-ws:connect="/ws"' in html and 'id="notification-tray"' in html


def test_signed_out_pages_open_no_socket(client, ctx):
    html = client.get("/login").get_data(as_text=True)
    assert "hx-ws" not in html and 'id="offer-tray"' not in html


# --- POST /offers/<id>/accept ---------------------------------------------


def test_accept_answers_the_ended_offer_and_sends_htmx_to_the_contact(
    client, auth, ctx
):
    agent, _other = _agents()
    offer = _offer_to(agent, _other)
    assert offer.agent_id == agent.id
    auth.login(agent)

    response = client.hx_post(f"/offers/{offer.id}/accept")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert f'id="offer-{offer.id}"' in html and 'data-state="accepted"' in html
    contact_id = offer.lead.contact_id
    assert response.headers["HX-Redirect"] == f"/contacts/{contact_id}"
    db.session.expire_all()
    assert db.session.get(Contact, contact_id).owner_id == agent.id
    lead = db.session.get(Lead, offer.lead_id)
    assert lead.state == "assigned" and lead.accepted_by_id == agent.id


def test_second_accept_is_409_and_says_why(client, auth, ctx):
    (agent,) = _agents(1)
    offer = _offer_to(agent)
    auth.login(agent)
    assert client.hx_post(f"/offers/{offer.id}/accept").status_code == 200
    response = client.hx_post(f"/offers/{offer.id}/accept")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert "You already accepted this lead." in html
    assert 'data-state="accepted"' in html
    # Declining what was accepted is refused too, and changes nothing.
    assert client.hx_post(f"/offers/{offer.id}/decline").status_code == 409
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "accepted"


def test_accept_without_htmx_redirects_to_the_contact(client, auth, ctx):
    (agent,) = _agents(1)
    offer = _offer_to(agent)
    auth.login(agent)
    response = client.post(f"/offers/{offer.id}/accept")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/contacts/{offer.lead.contact_id}")


def test_accept_after_the_deadline_is_409_and_the_lead_moves_on(client, auth, ctx):
    late, next_agent = _agents()
    offer = _offer_to(late, next_agent)
    assert offer.agent_id == late.id
    # The deadline passed and no job has expired the offer yet.
    db.session.execute(
        update(Offer)
        .where(Offer.id == offer.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    auth.login(late)

    response = client.hx_post(f"/offers/{offer.id}/accept")
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Too late" in html and 'data-state="expired"' in html
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "expired"
    assert db.session.get(Contact, offer.lead.contact_id).owner_id is None
    moved = pool.pending_offer(next_agent.id)
    assert moved is not None and moved.lead_id == offer.lead_id


def test_another_agents_offer_is_404(client, auth, ctx):
    owner, intruder = _agents()
    offer = _offer_to(owner)
    auth.login(intruder)
    assert client.hx_post(f"/offers/{offer.id}/accept").status_code == 404
    assert client.hx_post(f"/offers/{offer.id}/decline").status_code == 404
    assert client.hx_post("/offers/999999/accept").status_code == 404
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "pending"


def test_offer_buttons_need_leads_receive_and_csrf(client, auth, ctx):
    (agent,) = _agents(1)
    offer = _offer_to(agent)
    auth.login(factories.make_user("reception"))
    assert client.hx_post(f"/offers/{offer.id}/accept").status_code == 403
    auth.logout()
    auth.login(agent)
    assert client.post(f"/offers/{offer.id}/accept", csrf=False).status_code == 400
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "pending"


# --- POST /offers/<id>/decline --------------------------------------------


def test_decline_answers_the_ended_offer_and_passes_the_lead_on(client, auth, ctx):
    first, second = _agents()
    offer = _offer_to(first, second)
    assert offer.agent_id == first.id
    auth.login(first)

    response = client.hx_post(f"/offers/{offer.id}/decline")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert f'id="offer-{offer.id}"' in html and 'data-state="declined"' in html
    assert "HX-Redirect" not in response.headers
    passed = pool.pending_offer(second.id)
    assert passed is not None and passed.lead_id == offer.lead_id
    db.session.expire_all()
    assert db.session.get(Contact, offer.lead.contact_id).owner_id is None


def test_decline_twice_is_409(client, auth, ctx):
    (agent,) = _agents(1)
    offer = _offer_to(agent)
    auth.login(agent)
    assert client.hx_post(f"/offers/{offer.id}/decline").status_code == 200
    response = client.hx_post(f"/offers/{offer.id}/decline")
    assert response.status_code == 409
    assert "You already declined this lead." in response.get_data(as_text=True)


def test_decline_with_a_reason_keeps_it_and_a_bad_one_is_named(client, auth, ctx):
    first, second = _agents()
    offer = _offer_to(first, second)
    card = push.offer_html(offer.id)
    assert 'data-decline-reason="busy"' in card and "Busy with a customer" in card
    auth.login(first)
    bad = client.hx_post(f"/offers/{offer.id}/decline", data={"reason": "bored"})
    assert bad.status_code == 422
    assert "Pick a reason from the list." in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "pending"  # nothing written
    ok = client.hx_post(f"/offers/{offer.id}/decline", data={"reason": "busy"})
    assert ok.status_code == 200
    db.session.expire_all()
    ended = db.session.get(Offer, offer.id)
    assert (ended.state, ended.decline_reason) == ("declined", "busy")


def test_switching_off_withdraws_the_pending_offer(client, auth, ctx):
    first, second = _agents()
    offer = _offer_to(first, second)
    auth.login(first)
    assert client.hx_post("/presence", data={"available": "0"}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "cancelled"
    passed = pool.pending_offer(second.id)
    assert passed is not None and passed.lead_id == offer.lead_id
    response = client.hx_post(f"/offers/{offer.id}/accept")
    assert response.status_code == 409
    assert "withdrawn" in response.get_data(as_text=True)


def test_pushed_offer_carries_what_the_pop_up_needs(ctx):
    (agent,) = _agents(1)
    offer = _offer_to(agent, message="Two bedrooms, <b>near</b> the park")
    html = push.offer_html(offer.id)
    assert 'id="offer-tray" hx-swap-oob="innerHTML"' in html
    assert f'data-offer-id="{offer.id}"' in html
    assert f'data-lead-id="{offer.lead_id}"' in html
    assert 'data-state="pending"' in html and 'role="alertdialog"' in html
    assert 'data-expires-at="' in html and 'Z"' in html
    seconds = int(html.split('data-seconds-left="')[1].split('"')[0])
    assert 55 <= seconds <= 60
    assert 'data-timeout-seconds="60"' in html
    assert "&lt;b&gt;near&lt;/b&gt;" in html  # the lead's message is escaped
    assert f"/offers/{offer.id}/accept" in html
    assert f"/offers/{offer.id}/decline" in html
    assert "<dd><bdi>sales</bdi></dd>" in html  # the department


@pytest.mark.parametrize("answer", ["accept", "decline"])
def test_the_end_of_an_answered_offer_is_pushed_in_the_agents_language(
    client, auth, ctx, answer
):
    (agent,) = _agents(1)
    agent.language = "pt_BR"
    db.session.commit()
    offer = _offer_to(agent)
    contact_name = offer.lead.contact.name
    auth.login(agent)
    redis = get_redis()
    listener = redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis))
    listener.get_message(timeout=1, ignore_subscribe_messages=False)
    try:
        assert client.hx_post(f"/offers/{offer.id}/{answer}").status_code == 200
        frames = []
        while (message := listener.get_message(timeout=1)) is not None:
            frames.append(json.loads(message["data"]))
    finally:
        listener.close()
    ended = [
        f["t"] for f in frames if f["u"] == agent.id and 'hx-swap-oob="true"' in f["t"]
    ]
    assert len(ended) == 1, frames
    state = "accepted" if answer == "accept" else "declined"
    assert f'id="offer-{offer.id}"' in ended[0]
    assert f'data-state="{state}"' in ended[0]
    said = "Você aceitou" if answer == "accept" else "Você recusou"
    assert f"{said} o lead de <bdi>{contact_name}</bdi>." in ended[0]


def test_a_dispatched_pop_up_is_the_one_read_back_on_reconnect(ctx):
    # The router pushes the pop-up from what its pass read, a reconnect from
    # the database: both build one OfferCard, so they show the same.
    (agent,) = _agents(1)
    agent.language = "pt_BR"
    db.session.commit()
    factories.go_online(agent)
    lead = factories.make_lead(department="sales", message="Two <b>rooms</b>")
    redis = get_redis()
    listener = redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis))
    listener.get_message(timeout=1, ignore_subscribe_messages=False)
    try:
        assert routing.dispatch(current_account()) == 1
        frames = []
        while (message := listener.get_message(timeout=1)) is not None:
            frames.append(json.loads(message["data"]))
    finally:
        listener.close()
    (pushed,) = [f["t"] for f in frames if f["u"] == agent.id]
    offer = pool.pending_offer(agent.id)
    assert offer.lead_id == lead.id

    def steady(html: str) -> str:  # the seconds left tick between the two
        html = re.sub(r'data-seconds-left="\d+"', "", html)
        return re.sub(r"data-countdown>\d+<", "data-countdown><", html)

    read_back = push.offer_html(offer.id)
    assert steady(pushed) == steady(read_back)
    assert "<dd><bdi>sales</bdi></dd>" in pushed
    assert "&lt;b&gt;rooms&lt;/b&gt;" in pushed
    assert "Novo lead" in pushed  # in the agent's language
