"""The roulette under faults, with real processes.

The module's cluster is web A (gunicorn), web B (`flask run`) and one worker
on the suite's database and Redis; the Redis restart runs on a cluster of
its own around a private redis-server. Deadlines that a test races or needs
passed are moved in the database rather than waited for: the offer timeout's
minimum is 10 s, and the code under test reads the deadline from the row.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import redis as redis_lib
from flask import Flask
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import text

from portal.extensions import db
from portal.models import Contact, Lead
from portal.redis_conn import get_redis
from tests.roulette_procs import (
    Cluster,
    Scene,
    cookie_header,
    handshake_status,
    now_utc,
    wait_until,
)


def _lead_state(app: Flask, lead_id: int) -> tuple[str, int | None]:
    with app.app_context():
        lead = db.session.get(Lead, lead_id)
        owner = db.session.get(Contact, lead.contact_id).owner_id
        state = lead.state
        db.session.remove()
    return state, owner


def test_the_expiry_job_run_twice_hands_the_lead_on_once(app: Flask, scene: Scene):
    import jobs.roulette

    scene.enable_roulette(timeout=60)
    first, second = scene.agents(2)
    sock1 = scene.online(first, "B")
    sock2 = scene.online(second, "A")
    lead_id = scene.post_lead("A")
    offer = sock1.wait_offer(timeout=10, lead_id=lead_id)

    # The deadline comes in a moment; at that moment the expiry runs twice
    # as RQ jobs in the live worker and twice more in this process, while
    # the worker's sweeper ticks too.
    deadline = now_utc() + timedelta(seconds=1)
    scene.set_deadline([offer.offer_id], deadline)
    with app.app_context():
        queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
        job_ids = [
            queue.enqueue_at(
                deadline,
                "jobs.roulette.expire_offer",
                offer.offer_id,
                job_id=f"twice-{n}-{offer.offer_id}",
            ).id
            for n in range(2)
        ]
    barrier = threading.Barrier(2)
    here: list[bool] = []

    def expire_here() -> None:
        with app.app_context():
            barrier.wait(timeout=10)
            time.sleep(max(0.0, (deadline - now_utc()).total_seconds()))
            here.append(jobs.roulette.expire_offer(offer.offer_id))
            db.session.remove()

    threads = [threading.Thread(target=expire_here) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    def job_results():
        with app.app_context():
            found = [Job.fetch(i, connection=get_redis()) for i in job_ids]
            if all(j.get_status() == "finished" for j in found):
                return [j.return_value() for j in found]
            return None

    in_worker = wait_until(job_results, timeout=15, what="both expiry jobs")
    outcomes = here + in_worker
    # At most one run ended it (none when the sweeper came first).
    assert outcomes.count(True) <= 1, outcomes
    sock1.wait_offer(timeout=10, offer_id=offer.offer_id, state="expired")
    moved = sock2.wait_offer(timeout=10, lead_id=lead_id)
    # Nothing more comes: one expiry pushed, one hand-off.
    sock1.collect(1.5)
    sock2.collect(0.1)
    assert [f.state for f in sock1.offers_seen() if f.offer_id == offer.offer_id] == [
        "pending",
        "expired",
    ]
    assert [f.offer_id for f in sock2.offers_seen(state="pending")] == [moved.offer_id]
    assert scene.offers(lead_id) == [
        (offer.offer_id, first.id, "expired"),
        (moved.offer_id, second.id, "pending"),
    ]
    scene.note(f"expiry run 4 times: outcomes here {here}, in the worker {in_worker}")


def _at(moment) -> None:
    """Sleep until the wall-clock moment (a few ms at most here)."""
    time.sleep(max(0.0, (moment - now_utc()).total_seconds()))


def _race_once(app: Flask, scene: Scene, n: int, offset: float) -> str:
    """One offer whose deadline is 0.6 s away; at the deadline the expiry
    job runs here while, `offset` seconds from it, the agent accepts over
    HTTP. Returns which won, having checked that only it happened."""
    import jobs.roulette

    # A department each: nothing of an earlier round comes to this agent.
    (agent,) = scene.agents(1, department=f"race-{n}")
    sock = scene.online(agent, "B")
    lead_id = scene.post_lead("A", department=f"race-{n}")
    offer = sock.wait_offer(timeout=10, lead_id=lead_id)
    deadline = now_utc() + timedelta(seconds=0.6)
    scene.set_deadline([offer.offer_id], deadline)
    http = scene.http(agent, "A")
    answers: dict[str, object] = {}

    def accept() -> None:
        _at(deadline + timedelta(seconds=offset))
        answers["accept"] = http.request(
            "POST",
            f"/offers/{offer.offer_id}/accept",
            {},
            X_CSRFToken=scene.csrf(agent),
            HX_Request="true",
        )

    def expire() -> None:
        with app.app_context():
            _at(deadline)
            answers["expire"] = jobs.roulette.expire_offer(offer.offer_id)
            db.session.remove()

    threads = [threading.Thread(target=accept), threading.Thread(target=expire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    status, body = answers["accept"]
    final = sock.wait_for(
        lambda m: (
            f'id="offer-{offer.offer_id}"' in m and 'data-state="pending"' not in m
        ),
        timeout=10,
        what="the offer's end",
    )
    sock.collect(0.5)
    ends = [
        f.state
        for f in sock.offers_seen()
        if f.offer_id == offer.offer_id and f.state != "pending"
    ]
    state, owner = _lead_state(app, lead_id)
    offers = scene.offers(lead_id)
    sock.close()
    scene.switch_on(agent, "B", on=False)
    if status == 200:
        assert answers["expire"] is False
        assert 'data-state="accepted"' in final
        assert ends == ["accepted"], ends
        assert (state, owner) == ("assigned", agent.id)
        assert offers == [(offer.offer_id, agent.id, "accepted")]
        return "accepted"
    assert status == 409, (status, body[:300])
    assert ends == ["expired"], ends
    # Its only round ran out: the lead waits for someone new.
    assert (state, owner) == ("queued", None)
    assert offers == [(offer.offer_id, agent.id, "expired")]
    return "expired"


def test_accept_racing_the_expiry_at_the_deadline_has_exactly_one_outcome(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60, rounds=1)
    # From before to after the deadline, crossing it.
    offsets = [-0.08, -0.04, -0.02, -0.01, 0.0, 0.02]
    tally = Counter(_race_once(app, scene, n, o) for n, o in enumerate(offsets))
    scene.note(f"accept vs expiry at the deadline: {dict(tally)}")
    assert sum(tally.values()) == len(offsets)


def test_a_killed_worker_restarted_expires_every_overdue_offer_and_moves_on(
    app: Flask, scene: Scene, cluster: Cluster
):
    scene.enable_roulette(timeout=60)
    first, second = scene.agents(2)
    sock1 = scene.online(first, "A")
    sock2 = scene.online(second, "B")
    lead1 = scene.post_lead("A")
    offer1 = sock1.wait_offer(timeout=10, lead_id=lead1)
    lead2 = scene.post_lead("B")
    offer2 = sock2.wait_offer(timeout=10, lead_id=lead2)

    # A crash: the worker and its forked scheduler die at once, leaving the
    # scheduler's lock in Redis (rq waits a minute before another takes it).
    cluster.procs["worker"].kill()
    scene.set_deadline(
        [offer1.offer_id, offer2.offer_id], now_utc() - timedelta(seconds=1)
    )
    # The web processes do not sweep: without a worker the offers stay.
    time.sleep(1.5)
    assert [o[2] for o in scene.offers(lead1) + scene.offers(lead2)] == [
        "pending",
        "pending",
    ]

    restarted = time.monotonic()
    cluster.procs["worker"].start()
    sock1.wait_offer(timeout=15, offer_id=offer1.offer_id, state="expired")
    sock2.wait_offer(timeout=15, offer_id=offer2.offer_id, state="expired")
    got2 = sock1.wait_offer(timeout=15, lead_id=lead2)
    got1 = sock2.wait_offer(timeout=15, lead_id=lead1)
    recovery = time.monotonic() - restarted
    scene.note(f"worker SIGKILLed and restarted: offers moved on in {recovery:.2f} s")
    assert recovery < 15
    assert scene.offers(lead1) == [
        (offer1.offer_id, first.id, "expired"),
        (got1.offer_id, second.id, "pending"),
    ]
    assert scene.offers(lead2) == [
        (offer2.offer_id, second.id, "expired"),
        (got2.offer_id, first.id, "pending"),
    ]


def _refuse_offers(app: Flask) -> list[str]:
    """DDL: a trigger that aborts every insert into `offer`; returns the DDL
    that removes it."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(
                text(
                    "CREATE FUNCTION refuse_offer() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'offers are refused' USING ERRCODE = "
                    "'check_violation'; END $$ LANGUAGE plpgsql"
                )
            )
            db.session.execute(
                text(
                    "CREATE TRIGGER refuse_offer BEFORE INSERT ON offer "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_offer()"
                )
            )
            undo = [
                "DROP TRIGGER IF EXISTS refuse_offer ON offer",
                "DROP FUNCTION IF EXISTS refuse_offer()",
            ]
        else:
            db.session.execute(
                text(
                    "CREATE TRIGGER refuse_offer BEFORE INSERT ON offer "
                    "BEGIN SELECT RAISE(ABORT, 'offers are refused'); END"
                )
            )
            undo = ["DROP TRIGGER IF EXISTS refuse_offer"]
        db.session.commit()
        db.session.remove()
    return undo


def _run_ddl(app: Flask, statements: list[str]) -> None:
    with app.app_context():
        for statement in statements:
            db.session.execute(text(statement))
        db.session.commit()
        db.session.remove()


def test_a_lead_whose_offer_rolls_back_sends_no_push_and_schedules_no_job(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    (agent,) = scene.agents(1)
    sock = scene.online(agent, "B")
    sock.collect(0.3)

    undo = _refuse_offers(app)
    try:
        lead_id = scene.post_lead("A", expect_state="queued")
        # (The worker's sweeper may try meanwhile, and fail the same way.)
        heard = sock.collect(2.0)
        assert not [m for m in heard if "data-offer-id" in m], heard
        assert scene.offers(lead_id) == []
        assert _lead_state(app, lead_id) == ("queued", None)
        with app.app_context():
            queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
            assert ScheduledJobRegistry(queue=queue).get_job_ids() == []
            assert queue.get_job_ids() == []
    finally:
        _run_ddl(app, undo)
    # Once offers may be written again the sweeper places the lead.
    offer = sock.wait_offer(timeout=10, lead_id=lead_id)
    assert scene.offers(lead_id) == [(offer.offer_id, agent.id, "pending")]
    # Its deadline is the worker's expiry sweep's to keep: no job either.
    with app.app_context():
        queue = Queue(app.config["RQ_QUEUE"], connection=get_redis())
        assert ScheduledJobRegistry(queue=queue).get_job_ids() == []


def test_suspending_a_connected_agent_closes_the_socket_and_passes_the_offer_on(
    app: Flask, scene: Scene
):
    scene.enable_roulette(timeout=60)
    first, second = scene.agents(2)
    (admin,) = scene.agents(1, role="admin")
    sock1 = scene.online(first, "B")
    sock2 = scene.online(second, "A")
    lead_id = scene.post_lead("A")
    offer = sock1.wait_offer(timeout=10, lead_id=lead_id)

    status, body = scene.post(admin, "A", f"/admin/users/{first.id}/suspend")
    assert status == 200, body[:300]
    sock1.wait_closed(timeout=10)
    assert sock1.ws.close_reason == 1008
    moved = sock2.wait_offer(timeout=10, lead_id=lead_id)
    # Their presence is gone and stays gone: the closing socket does not
    # put it back.
    time.sleep(0.5)
    with app.app_context():
        assert get_redis().zscore("roleta:presence:1", str(first.id)) is None
        assert get_redis().zscore("roleta:presence:1", str(second.id)) is not None
    assert scene.offers(lead_id) == [
        (offer.offer_id, first.id, "cancelled"),
        (moved.offer_id, second.id, "pending"),
    ]
    # The suspended agent's session is over: no socket for them any more.

    headers = {
        "Cookie": cookie_header(scene.http(first, "B").cookies),
        "Origin": cluster_url(scene, "B"),
    }
    assert handshake_status(cluster_url(scene, "B"), headers) == 401


def cluster_url(scene: Scene, web: str) -> str:
    return scene.cluster.url(web)


@pytest.mark.parametrize("web", ["A", "B"])
def test_a_cross_site_origin_is_refused_and_an_anonymous_socket_unauthorised(
    scene: Scene, web: str
):

    (agent,) = scene.agents(1)
    url = scene.cluster.url(web)
    cookie = cookie_header(scene.http(agent, web).cookies)
    assert (
        handshake_status(url, {"Cookie": cookie, "Origin": "http://evil.example"})
        == 403
    )
    assert handshake_status(url, {"Cookie": cookie, "Origin": "null"}) == 403
    assert handshake_status(url, {"Origin": url}) == 401
    assert handshake_status(url, {"Cookie": "session=forged", "Origin": url}) == 401
    # The same cookie from the site itself opens.
    assert handshake_status(url, {"Cookie": cookie, "Origin": url}) is None


def test_pushes_stay_within_their_redis_database(app: Flask, scene: Scene):
    """Pub/sub channels are shared by every database of a Redis server:
    another deployment on the next database number, with a user of the same
    id, must not reach this agent's socket."""
    from portal.realtime.hub import channel_of

    (agent,) = scene.agents(1)
    sock = scene.connect(agent, "B")
    sock.collect(0.3)
    with app.app_context():
        ours = get_redis()
        kwargs = dict(ours.connection_pool.connection_kwargs)
        kwargs["db"] = ((kwargs.get("db") or 0) + 1) % 16
        pool = redis_lib.ConnectionPool(
            connection_class=ours.connection_pool.connection_class, **kwargs
        )
        theirs = redis_lib.Redis(connection_pool=pool)
        try:
            payload = {"u": agent.id, "t": '<p id="stray">theirs</p>'}
            theirs.publish(channel_of(theirs), json.dumps(payload))
            assert not [m for m in sock.collect(1.0) if "stray" in m]
            # The same message on our database arrives.
            payload["t"] = '<p id="ours">ours</p>'
            ours.publish(channel_of(ours), json.dumps(payload))
            sock.wait_for(lambda m: 'id="ours"' in m, timeout=5, what="our push")
        finally:
            pool.disconnect()


def _socket_that_never_reads(url: str, cookies: dict[str, str]) -> socket.socket:
    """A websocket opened by hand whose client reads nothing after the
    handshake, with a small receive buffer: the server's sends soon block,
    as they do for a phone that lost its network without closing."""
    parts = urlsplit(url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {url}\r\nCookie: {cookie_header(cookies)}\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += raw.recv(1)  # the handshake's answer, not a byte more
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return raw


def test_a_client_that_stops_reading_holds_up_no_other_socket(app: Flask, scene: Scene):
    from portal.realtime.hub import MAX_BACKLOG, publish

    stuck, other = scene.agents(2)
    # Both on B, a single process: one subscriber thread feeds both sockets.
    raw = _socket_that_never_reads(
        scene.cluster.url("B"), scene.http(stuck, "B").cookies
    )
    sock = scene.connect(other, "B")
    sock.collect(0.3)
    with app.app_context():
        presence = "roleta:presence:1"
        wait_until(
            lambda: get_redis().zscore(presence, str(stuck.id)) is not None,
            timeout=5,
            what="the silent socket to register",
        )
        # Far more than the kernel buffers between the two hold (4 MiB at
        # most on the server's side), then more than MAX_BACKLOG besides.
        big = "<div>" + "x" * 32_000 + "</div>"
        pushes = 4 * 1024 * 1024 // len(big) + MAX_BACKLOG * 3
        for _ in range(pushes):
            publish(stuck.id, big)
        publish(other.id, '<p id="through">through</p>')
    sock.wait_for(
        lambda m: 'id="through"' in m, timeout=5, what="a push past the silent socket"
    )
    # The silent socket was dropped: reading it now ends at its close.
    raw.settimeout(10)
    received = 0
    try:
        while chunk := raw.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    finally:
        raw.close()
    assert received < pushes * len(big)  # cut short, not all sent
    scene.cluster.check_running()
