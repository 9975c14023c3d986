"""Redis restarted under running processes.

A private redis-server (no persistence: a restart loses every key) serves a
cluster of its own: web A (gunicorn), web B (`flask run`) and a worker. The
suite's other clusters are stopped by then (module scope), so no other
worker sweeps this database meanwhile.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask
from rq import Queue

from portal.realtime.presence import HEARTBEAT_SECONDS
from tests.roulette_procs import (
    PrivateRedis,
    Scene,
    now_utc,
    start_cluster,
    wait_until,
)


@pytest.fixture
def private_cluster(app: Flask, database_url: str, tmp_path_factory, clean_state):
    directory = tmp_path_factory.mktemp("private-redis")
    server = PrivateRedis(directory)
    server.start()
    running = None
    try:
        running = start_cluster(app, database_url, server.url, directory)
        yield running, server
    finally:
        if running is not None:
            running.stop()
        server.stop()


def test_redis_restarted_sockets_and_subscribers_recover_and_pending_offers_are_resent(
    app: Flask, private_cluster
):
    cluster_, server = private_cluster
    scene = Scene(app, cluster_)
    try:
        _redis_restart(app, scene, server)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n{cluster_.logs()}") from None
    finally:
        scene.close()


def _redis_restart(app: Flask, scene: Scene, server: PrivateRedis) -> None:
    scene.enable_roulette(timeout=60)
    first, second = scene.agents(2)
    sock1 = scene.online(first, "A")
    sock2 = scene.online(second, "B")
    # Through the API: this process never talks to the private Redis.
    lead1 = scene.post_lead("B", expect_state="queued")
    offer1 = sock1.wait_offer(timeout=10, lead_id=lead1)
    lead2 = scene.post_lead("A", expect_state="queued")
    offer2 = sock2.wait_offer(timeout=10, lead_id=lead2)
    account_key = "roleta:presence:1"
    assert server.client().zcard(account_key) == 2

    server.kill()
    time.sleep(1.0)
    server.start()
    back = time.monotonic()
    # Every key is gone; the hubs re-subscribe and re-send pending offers.
    again1 = sock1.wait_offer(timeout=15, offer_id=offer1.offer_id)
    again2 = sock2.wait_offer(timeout=15, offer_id=offer2.offer_id)
    resent = time.monotonic() - back
    assert (again1, again2) == (offer1, offer2)
    # The hubs put presence back as they re-subscribe (heartbeats would,
    # but only within HEARTBEAT_SECONDS).
    wait_until(
        lambda: server.client().zcard(account_key) == 2,
        timeout=5,
        what="both presence marks",
    )
    presence_back = time.monotonic() - back
    assert not sock1.closed and not sock2.closed
    scene.cluster.check_running()

    # Pushes flow again from the web processes: the first declines, and the
    # second, accepting, frees herself for the lead the first passed on.
    status, _ = scene.post(first, "A", f"/offers/{offer1.offer_id}/decline")
    assert status == 200
    sock1.wait_offer(timeout=10, offer_id=offer1.offer_id, state="declined")
    status, _ = scene.post(second, "B", f"/offers/{offer2.offer_id}/accept")
    assert status == 200
    sock2.wait_offer(timeout=10, offer_id=offer2.offer_id, state="accepted")
    third = sock2.wait_offer(timeout=10, lead_id=lead1)
    # And the worker still works: an overdue offer expires.
    scene.set_deadline([third.offer_id], now_utc() - timedelta(seconds=1))
    sock2.wait_offer(timeout=10, offer_id=third.offer_id, state="expired")
    # The worker's scheduler (a forked process that dies with its Redis
    # connection) runs scheduled jobs again.
    queue = Queue(app.config["RQ_QUEUE"], connection=server.client())
    job = queue.enqueue_at(now_utc() + timedelta(seconds=0.5), "jobs.roulette.sweep")
    wait_until(
        lambda: job.get_status(refresh=True) == "finished",
        timeout=15,
        what="a scheduled job to run",
    )
    # Heartbeats alone put a lost mark back too, within HEARTBEAT_SECONDS.
    server.client().delete(account_key)
    lost = time.monotonic()
    wait_until(
        lambda: server.client().zcard(account_key) == 2,
        timeout=HEARTBEAT_SECONDS + 3,
        what="heartbeats to restore both marks",
        interval=0.2,
    )
    beat = time.monotonic() - lost
    scene.note(f"presence marks deleted: heartbeats restored them in {beat:.2f} s")
    scene.note(
        f"Redis restarted: offers re-sent {resent:.2f} s after it was back, "
        f"presence back after {presence_back:.2f} s"
    )
