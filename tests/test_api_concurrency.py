"""Idempotency under fire: 20 concurrent POSTs of the same lead (same
external_id) against a real server make one lead, one contact and at most one
offer; one request answers 201, the other 19 answer 200 with the same ids.

Two servers, each over several rounds to catch flakiness: the threaded
development server (`flask run`, one process) and gunicorn with 4 worker
processes (the requests meet in the database from different processes). Both
run on the suite's database (SQLite, or PostgreSQL from DATABASE_URL) and
Redis, with the roulette on and a free agent online.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, Lead, Offer
from tests import factories
from tests.live_http import HTTP_TIMEOUT, api_request, start_server

CLIENTS = 20
ROUNDS = 4


@pytest.fixture(scope="module", params=["flask", "gunicorn"])
def server(request, app: Flask, database_url: str, redis_url: str, tmp_path_factory):
    # `app` is requested for its side effect: the schema is migrated.
    live = start_server(
        request.param,
        database_url,
        redis_url,
        tmp_path_factory.mktemp(f"api-{request.param}"),
        workers=4,
        threads=5,
    )
    yield live
    live.stop()


def _fire(base_url: str, key: str, body: dict) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(CLIENTS)

    def one(_n: int) -> tuple[int, dict]:
        barrier.wait(timeout=HTTP_TIMEOUT)
        return api_request(base_url, "POST", "/api/v1/leads", key, body)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def test_twenty_identical_posts_make_one_lead_and_one_offer(app: Flask, server):
    with app.test_request_context():
        factories.enable_roulette()
        key = factories.make_api_key("leads:write")
        db.session.remove()
    for round_no in range(ROUNDS):
        with app.test_request_context():
            # A free agent each round: the last one still holds their offer.
            agent = factories.make_user("attendant")
            factories.go_online(agent)
            agent_id = agent.id
            db.session.remove()
        external_id = f"{server.url}-round-{round_no}"
        body = {
            "name": f"Racer {round_no}",
            "phone": f"+55 11 9{round_no:04d}-0000",
            "email": f"racer{round_no}@example.com",
            "external_id": external_id,
            "custom": {"round": round_no},
        }
        answers = _fire(server.url, key, body)

        statuses = Counter(status for status, _ in answers)
        assert statuses == {201: 1, 200: CLIENTS - 1}, (round_no, answers)
        ids = {(a["id"], a["contact_id"]) for _, a in answers}
        assert len(ids) == 1, ids
        [(lead_id, contact_id)] = ids
        created = [a for status, a in answers if status == 201]
        assert created[0]["created"] is True and created[0]["state"] == "offered"
        assert all(a["created"] is False for s, a in answers if s == 200)

        with app.app_context():
            leads = db.session.scalars(
                select(Lead).where(Lead.external_id == external_id)
            ).all()
            assert [lead.id for lead in leads] == [lead_id]
            # The losers' contacts were rolled back with their leads.
            contacts = db.session.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.email_normalized == body["email"])
            )
            assert contacts == 1
            offers = db.session.scalars(
                select(Offer).where(Offer.lead_id == lead_id)
            ).all()
            assert [(o.agent_id, o.state) for o in offers] == [(agent_id, "pending")]
            assert leads[0].contact_id == contact_id
            db.session.remove()
    server.check_running()
