"""The router: while a worker's router holds the lease, requests hand routing
to it; its batch dispatch offers the oldest waiting leads to the free agents
in turn, one read of the pool for the lot.

The router runs here as the real thread the worker starts, against the
suite's database and Redis.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event, select

from portal.extensions import db
from portal.models import AgentState, Lead, Offer
from portal.models.base import utcnow
from portal.roulette import decisions, lease, pool, router, routing, sweep, switch
from portal.settings.service import current_account
from tests.factories import enable_roulette, make_api_key, make_lead
from tests.roulette_helpers import agent, fresh, offers_of, pending_for


def wait_for(check, timeout: float = 5.0, what: str = "the router"):
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()  # read what other threads committed
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def running_router(app: Flask):
    """A router thread holding the lease, stopped (lease released) after."""
    thread = router.Router(app)
    thread.start()
    with app.app_context():
        wait_for(lease.running, what="the router's lease")
    yield thread
    thread.stop()
    assert not thread.is_alive()


@pytest.fixture
def router_elsewhere(ctx, redis_client):
    """The lease held as if a router ran in another process: services hand
    routing off, and the test runs that router's dispatch itself."""
    redis_client.set(lease.LEASE, "elsewhere", px=60_000)
    yield
    redis_client.delete(lease.LEASE)


def in_turn(*users, seconds: int = 10) -> None:
    """Make `users` wait longest first (turn order as given)."""
    for position, user in enumerate(users):
        state = db.session.get(AgentState, user.id)
        state.available_changed_at = utcnow() - timedelta(
            seconds=seconds * (len(users) - position)
        )
    db.session.commit()


# ------------------------------------------------------------------ dispatch


def test_one_dispatch_offers_the_oldest_leads_to_the_free_agents_in_turn(ctx):
    enable_roulette()
    first, second = agent(), agent()
    in_turn(first, second)
    old, middle, new = (make_lead(department="sales") for _ in range(3))

    assert routing.dispatch(current_account()) == 2

    assert offers_of(old) == [(first.id, "pending")]
    assert offers_of(middle) == [(second.id, "pending")]
    assert offers_of(new) == []
    waiting = fresh(new)
    assert waiting.state == "queued"
    # Why it waits is on record: both agents answer other offers.
    assert {c["id"]: c["reason"] for c in waiting.routing} == {
        first.id: "busy",
        second.id: "busy",
    }


def test_dispatch_keeps_departments_and_declines_apart(ctx):
    enable_roulette(rounds=1)
    seller = agent("sales")
    support = agent("support")
    in_turn(seller, support)
    support_lead = make_lead(department="support")
    sales_lead = make_lead(department="sales")

    assert routing.dispatch(current_account()) == 2

    assert offers_of(support_lead) == [(support.id, "pending")]
    assert offers_of(sales_lead) == [(seller.id, "pending")]

    # The seller declines the last round: no dispatch asks them again.
    decisions.decline(seller, pending_for(sales_lead).id)
    assert routing.dispatch(current_account()) == 0
    assert offers_of(sales_lead) == [(seller.id, "declined")]


def test_a_declined_lead_starts_its_next_round_in_the_batch(router_elsewhere):
    enable_roulette(rounds=2)
    only = agent()
    lead = make_lead(department="sales")
    assert routing.dispatch(current_account()) == 1
    decisions.decline(only, pending_for(lead).id)
    assert offers_of(lead) == [(only.id, "declined")]  # left to the router

    # Everyone free declined this round: the dispatch opens round 2.
    assert routing.dispatch(current_account()) == 1
    assert offers_of(lead) == [(only.id, "declined"), (only.id, "pending")]
    assert fresh(lead).round == 2


def test_a_pass_reads_first_then_writes_its_offer_without_a_read(router_elsewhere):
    # The write transaction holds the lead's row (and on SQLite the one
    # write lock): nothing in it may wait for a read, such as re-loading
    # the account object the pass's read phase expired.
    enable_roulette()
    only = agent()
    lead = make_lead(department="sales")
    run: list[str] = []
    autocommit: dict[str, set] = {}

    def record(conn, cursor, statement, *args) -> None:
        verb = statement.split(None, 1)[0].upper()
        run.append(verb)
        dbapi = conn.connection.dbapi_connection
        autocommit.setdefault(verb, set()).add(getattr(dbapi, "autocommit", None))

    db.session.commit()  # the router's pass starts with no transaction open
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert router.dispatch_all() == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert pending_for(lead).agent_id == only.id
    assert fresh(lead).state == "offered"
    assert db.session.get(AgentState, only.id).last_offer_at is not None
    if db.engine.dialect.name == "postgresql":
        # The reads (queue, busy agents, declines) ran outside a transaction
        # (no BEGIN and ROLLBACK round trips); the three writes are one
        # statement, inside one.
        assert set(run[:-1]) == {"SELECT"} and run[-1] == "WITH"
        assert autocommit == {"SELECT": {True}, "WITH": {False}}
    else:
        # The read phase ends before the writes.
        assert run[run.index("UPDATE") :] == ["UPDATE", "INSERT", "UPDATE"]


def test_leads_nobody_can_take_are_not_planned_again(ctx):
    enable_roulette()
    busy = agent()
    first = make_lead(department="sales")
    assert routing.dispatch(current_account()) == 1
    second = make_lead(department="sales")

    routing.dispatch(current_account())
    recorded = fresh(second).routing
    assert [c["reason"] for c in recorded] == ["busy"]

    # Its reasons stay as recorded while nobody is free (no write per pass).
    busy_state = db.session.get(AgentState, busy.id)
    busy_state.available_changed_at = utcnow()
    db.session.commit()
    routing.dispatch(current_account())
    assert fresh(second).routing == recorded
    assert offers_of(first) == [(busy.id, "pending")]


# -------------------------------------------------------------------- router


def test_without_a_router_wake_says_so_and_leaves_nothing_behind(ctx, redis_client):
    assert lease.running() is False
    assert lease.wake() is False
    assert redis_client.llen(lease.WAKE) == 0


def test_with_the_router_running_the_intake_answers_at_once_and_the_router_offers(
    app, client, running_router
):
    with app.app_context():
        enable_roulette()
        ana = agent()
        key = make_api_key("leads:write")
        db.session.remove()

    response = client.post(
        "/api/v1/leads",
        json={"name": "Walk-in", "phone": "+55 11 98888-7777", "department": "sales"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201
    assert response.get_json()["state"] == "queued"
    lead_id = response.get_json()["id"]

    with app.app_context():
        offer = wait_for(
            lambda: db.session.scalar(
                select(Offer).where(Offer.lead_id == lead_id, Offer.state == "pending")
            ),
            what="the router's offer",
        )
        assert offer.agent_id == ana.id
        assert db.session.get(Lead, lead_id).state == "offered"


def test_a_decline_wakes_the_router_which_asks_the_next_agent(app, running_router):
    with app.test_request_context():
        enable_roulette()
        first, second = agent(), agent()
        in_turn(first, second)
        lead = make_lead(department="sales")
        assert lease.wake() is True
        offer = wait_for(lambda: pending_for(lead), what="the first offer")
        assert offer.agent_id == first.id

        decisions.decline(first, offer.id)

        again = wait_for(
            lambda: (o := pending_for(lead)) is not None and o.agent_id == second.id,
            what="the offer to the second agent",
        )
        assert again
        assert offers_of(lead) == [(first.id, "declined"), (second.id, "pending")]
        db.session.remove()


def test_an_agent_switching_on_gets_the_waiting_lead_from_the_router(
    app, running_router
):
    with app.test_request_context():
        enable_roulette()
        late = agent(online=False)
        lead = make_lead(department="sales")
        from tests.factories import go_online

        go_online(late)
        offer = wait_for(lambda: pending_for(lead), what="the offer")
        assert offer.agent_id == late.id
        db.session.remove()


def test_one_router_holds_the_lease_and_a_stopped_one_hands_it_over(app):
    first, second = router.Router(app), router.Router(app)
    first.start()
    try:
        with app.app_context():
            wait_for(lease.running, what="the first router's lease")
        second.start()
        time.sleep(0.3)
        with app.app_context():
            client = router.get_redis()
            assert client.get(lease.LEASE).decode() == first.token
        first.stop()
        with app.app_context():
            wait_for(
                lambda: (
                    (holder := client.get(lease.LEASE)) is not None
                    and holder.decode() == second.token
                ),
                timeout=5,
                what="the second router to take the lease",
            )
    finally:
        first.stop()
        second.stop()
    with app.app_context():
        assert lease.running() is False


def test_the_sweep_leaves_the_queue_to_a_running_router(app, running_router):
    with app.test_request_context():
        enable_roulette()
        agent()
        # Stop the router's loop but keep its lease: only the sweep could
        # route now, and it must leave the lead to the router.
        running_router.stopping.set()
        running_router.join(timeout=5)
        client = router.get_redis()
        client.set(lease.LEASE, running_router.token, px=5000)
        lead = make_lead(department="sales")

        assert sweep.sweep_queue()["dispatched"] == 0
        assert offers_of(lead) == []

        client.delete(lease.LEASE)
        assert sweep.sweep_queue()["dispatched"] == 1
        db.session.remove()


def one_agent_with_a_cached_roster():
    """The only agent took a lead through a dispatch that cached the roster
    (in which they are switched on); returns both."""
    enable_roulette()
    only = agent()
    rosters = pool.RosterCache()
    first = make_lead(department="sales")
    assert routing.dispatch(current_account(), rosters=rosters) == 1
    decisions.accept(only, pending_for(first).id)
    return only, rosters


def test_the_router_s_roster_forgets_an_agent_who_switched_off(router_elsewhere):
    only, rosters = one_agent_with_a_cached_roster()
    switch.set_available(only, False)

    # Within the roster's lifetime, but its version moved on with the switch.
    second = make_lead(department="sales")
    assert routing.dispatch(current_account(), rosters=rosters) == 0
    assert offers_of(second) == []
    assert [c["reason"] for c in fresh(second).routing] == ["paused"]


def test_placed_and_answered_offers_leave_no_job_for_the_worker(ctx):
    from portal.queue import get_queue

    enable_roulette()
    first, second = agent(), agent()
    in_turn(first, second)
    taken, passed = make_lead(department="sales"), make_lead(department="sales")
    routing.dispatch(current_account())
    registry = get_queue().scheduled_job_registry
    accepted, declined = pending_for(taken), pending_for(passed)
    # The worker's expiry sweep keeps the deadlines: nothing is scheduled.
    assert registry.get_job_ids() == []

    decisions.accept(first, accepted.id)
    decisions.decline(second, declined.id)

    assert registry.get_job_ids() == []
    assert not get_queue().connection.exists(
        f"rq:job:roleta-expire-offer-{accepted.id}"
    )


def test_a_stale_roster_cannot_place_an_offer_for_a_switched_off_agent(
    router_elsewhere,
):
    only, rosters = one_agent_with_a_cached_roster()
    # Switched off in the database, with the router not (yet) told.
    db.session.execute(
        db.update(AgentState)
        .where(AgentState.user_id == only.id)
        .values(available=False)
    )
    db.session.commit()

    second = make_lead(department="sales")
    assert routing.dispatch(current_account(), rosters=rosters) == 0
    assert offers_of(second) == []
    assert fresh(second).state == "queued"


def test_a_long_pass_renews_the_lease_and_stops_when_another_took_it(ctx, redis_client):
    mine = router.Router(current_app_object())
    assert mine.hold(redis_client)
    redis_client.pexpire(lease.LEASE, 500)
    mine._renewed -= router.RENEW_SECONDS  # as if a pass ran that long
    mine.tick()
    assert redis_client.pttl(lease.LEASE) > 2000  # renewed to LEASE_MS

    redis_client.set(lease.LEASE, "another", px=3000)
    mine._renewed -= router.RENEW_SECONDS
    with pytest.raises(router.LeaseLost):
        mine.tick()
    assert redis_client.get(lease.LEASE) == b"another"


def current_app_object():
    from flask import current_app

    return current_app._get_current_object()


def test_new_leads_while_everyone_is_busy_wait_for_the_next_look(app):
    """A burst's leads cannot be placed while every agent is answering: the
    router does not read the whole queue again for each of them, only when
    an agent may have come free, or at its idle look."""
    thread = router.Router(app)  # not started: its decision alone
    lead, agent_ = lease.FOR_LEAD.encode(), lease.FOR_AGENT.encode()
    thread.rosters.free_after = {1: 0}
    thread._passed = time.monotonic()
    assert thread.nothing_to_do({lead})
    assert not thread.nothing_to_do({lead, agent_})
    assert not thread.nothing_to_do({agent_})
    thread.rosters.free_after = {1: 2}
    assert not thread.nothing_to_do({lead})
    thread.rosters.free_after = {}  # the last pass found an empty queue
    assert not thread.nothing_to_do({lead})
    thread.rosters.free_after = {1: 0}
    thread._passed = time.monotonic() - router.IDLE_SECONDS
    assert not thread.nothing_to_do({lead})


def test_a_lead_arriving_while_everyone_is_busy_is_offered_once_an_agent_is_free(
    app, running_router
):
    with app.test_request_context():
        enable_roulette()
        only = agent()
        first = make_lead(department="sales")
        assert lease.wake(lease.FOR_LEAD) is True
        offer = wait_for(lambda: pending_for(first), what="the first offer")

        waiting = make_lead(department="sales")
        assert lease.wake(lease.FOR_LEAD) is True
        # Why it waits is on record by the router's next look.
        assert wait_for(lambda: fresh(waiting).routing, what="the reasons")
        assert fresh(waiting).state == "queued"

        decisions.accept(only, offer.id)  # frees the agent and wakes the router
        again = wait_for(lambda: pending_for(waiting), what="the second offer")
        assert again.agent_id == only.id
        db.session.remove()
