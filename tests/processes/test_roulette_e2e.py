"""The roulette end to end, with real processes.

Two web processes share the suite's database and Redis: A is gunicorn
(2 worker processes, threads) and B the threaded development server
(`flask run`), with one `flask --app app worker` beside them. Agents sign in
over HTTP and hold real websockets; leads arrive, offers are pushed through
Redis to whichever process holds the agent's socket, and accepting over HTTP
makes the contact theirs.
"""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.models import Contact, Lead, Offer
from tests.roulette_procs import (
    ISO_UTC,
    Scene,
    now_utc,
)


@pytest.mark.parametrize(("socket_on", "lead_to"), [("B", "A"), ("A", "B")])
def test_a_lead_posted_to_one_process_reaches_the_agent_on_another_and_accept_owns_it(
    app: Flask, scene: Scene, socket_on: str, lead_to: str
):
    scene.enable_roulette(timeout=60)
    (ana,) = scene.agents(1)
    sock = scene.online(ana, socket_on)

    started = time.monotonic()
    # The intake hands the lead to the worker's router and answers at once.
    lead_id = scene.post_lead(lead_to, name="Ana's lead", expect_state="queued")
    offer = sock.wait_offer(timeout=10, lead_id=lead_id)
    push_seconds = time.monotonic() - started

    assert offer.element_id == f"offer-{offer.offer_id}"
    assert ISO_UTC.match(offer.expires_at), offer.expires_at
    left = (offer.expires - now_utc()).total_seconds()
    assert 50 < left <= 60
    scene.note(f"lead -> offer on the socket: {push_seconds * 1000:.0f} ms")

    status, body = scene.http(ana, lead_to).request(
        "POST",
        f"/offers/{offer.offer_id}/accept",
        {},
        X_CSRFToken=scene.csrf(ana),
        HX_Request="true",
    )
    assert status == 200, body
    assert 'data-state="accepted"' in body
    # Every tab of the agent learns it too.
    sock.wait_offer(timeout=10, offer_id=offer.offer_id, state="accepted")
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        contact = db.session.get(Contact, lead.contact_id)
        assert lead.state == "assigned" and lead.accepted_by_id == ana.id
        assert contact.owner_id == ana.id
        states = db.session.scalars(
            select(Offer.state).where(Offer.lead_id == lead_id)
        ).all()
        assert states == ["accepted"]
        db.session.remove()
    # The contact page is hers over HTTP as well.
    status, page = scene.http(ana, lead_to).request("GET", f"/contacts/{contact.id}")
    assert status == 200
    assert "Ana&#39;s lead" in page or "Ana's lead" in page


def test_an_unanswered_offer_expires_and_goes_to_the_next_agent(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=10)
    first, second = scene.agents(2)
    sock1 = scene.online(first, "B")
    sock2 = scene.online(second, "A")

    lead_id = scene.post_lead("A")
    offer = sock1.wait_offer(timeout=10, lead_id=lead_id)
    expired = sock1.wait_offer(timeout=20, offer_id=offer.offer_id, state="expired")
    assert expired.element_id == f"offer-{offer.offer_id}"
    late = (now_utc() - offer.expires).total_seconds()
    moved = sock2.wait_offer(timeout=10, lead_id=lead_id)
    handoff = (now_utc() - offer.expires).total_seconds()
    scene.note(
        f"expiry seen {late:.2f} s after the deadline; next offer {handoff:.2f} s"
    )
    assert moved.offer_id != offer.offer_id
    assert late < 5
    assert not sock2.offers_seen(state="expired")
    with app.app_context():
        offers = db.session.scalars(
            select(Offer).where(Offer.lead_id == lead_id).order_by(Offer.id)
        ).all()
        assert [(o.agent_id, o.state) for o in offers] == [
            (first.id, "expired"),
            (second.id, "pending"),
        ]
        db.session.remove()


def test_the_contacts_owner_gets_the_offer_before_a_longer_waiting_agent(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    waiting, owner = scene.agents(2)
    sock_waiting = scene.online(waiting, "A")
    sock_owner = scene.online(owner, "B")

    # She owns the contact; its new lead comes in by the same email.
    scene.make_contact(owner=owner, email="returning@example.net")
    lead_id = scene.post_lead("A", email="returning@example.net")
    offer = sock_owner.wait_offer(timeout=10, lead_id=lead_id)
    with app.app_context():
        row = db.session.get(Offer, offer.offer_id)
        assert row.agent_id == owner.id and row.reason == "owner"
        db.session.remove()
    # The agent who waited longer hears nothing of it.
    assert not [f for f in sock_waiting.collect(1.0) if "data-offer-id" in f]

    # A lead of a contact nobody owns goes to the longest wait: `waiting`.
    other = scene.post_lead("B")
    sock_waiting.wait_offer(timeout=10, lead_id=other)


def test_a_lead_nobody_can_take_waits_until_an_agent_comes_online(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    (late,) = scene.agents(1)
    lead_id = scene.post_lead("A", expect_state="queued")
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        assert lead.state == "queued"
        assert (
            db.session.scalar(select(Offer.id).where(Offer.lead_id == lead_id)) is None
        )
        db.session.remove()

    sock = scene.connect(late, "B")
    # Connected but not available: still nothing.
    assert not [m for m in sock.collect(1.0) if "data-offer-id" in m]
    started = time.monotonic()
    scene.switch_on(late, "B")
    sock.wait_offer(timeout=10, lead_id=lead_id)
    scene.note(f"switch on -> offer: {(time.monotonic() - started) * 1000:.0f} ms")


def test_a_pending_offer_is_sent_again_on_reconnect_to_any_process(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    (agent,) = scene.agents(1)
    sock = scene.online(agent, "B")
    lead_id = scene.post_lead("A")
    offer = sock.wait_offer(timeout=10, lead_id=lead_id)
    sock.close()

    for web in ("B", "A"):
        again = scene.connect(agent, web)
        resent = again.wait_offer(timeout=10, offer_id=offer.offer_id)
        assert resent == offer
        again.close()
