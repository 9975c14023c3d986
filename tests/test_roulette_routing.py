"""Whom the roulette asks: owner priority, fair turns, skip reasons, rounds,
the queue, and one pending offer per agent under concurrent routing.

Everything runs against the real database and Redis; "online" is a real
presence mark plus the available switch (`factories.go_online`).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Account, AgentState, Lead, Offer, OfferState, User
from portal.models.base import utcnow
from portal.org import hours, structure
from portal.realtime import presence
from portal.roulette import decisions, placement, pool, routing, sweep, switch
from portal.roulette.choice import Skip
from portal.settings.service import current_account
from tests.factories import (
    enable_roulette,
    go_online,
    make_contact,
    make_lead,
    make_user,
)
from tests.roulette_helpers import agent, fresh, pending_for


def waited(user: User, seconds: float) -> None:
    """Put the agent's last offer and switch-on `seconds` in the past."""
    state = db.session.get(AgentState, user.id)
    moment = utcnow() - timedelta(seconds=seconds)
    state.last_offer_at = moment
    state.available_changed_at = moment
    db.session.commit()


def reasons(candidates: list[dict] | None) -> dict[int, str]:
    return {c["id"]: c["reason"] for c in candidates or ()}


def offer_of(placed: placement.Placed | None) -> Offer:
    assert placed is not None, "the lead was not offered"
    return db.session.get(Offer, placed.offer_id)


def set_account(**values) -> Account:
    account = current_account()
    for name, value in values.items():
        setattr(account, name, value)
    db.session.commit()
    return account


# ------------------------------------------------------------ owner priority


def test_the_owner_online_gets_the_lead_before_a_longer_waiting_agent(ctx):
    enable_roulette()
    veteran = agent()
    owner = agent()
    waited(veteran, 3600)
    waited(owner, 5)
    lead = make_lead(make_contact(owner=owner, department="sales"), department="sales")

    offer = offer_of(routing.route_lead(lead.id))

    assert offer.agent_id == owner.id
    assert offer.reason == "owner"
    assert reasons(offer.candidates) == {owner.id: "chosen", veteran.id: "later"}
    assert [c["owner"] for c in offer.candidates] == [True, False]


@pytest.mark.parametrize("why", ["offline", "busy", "paused"])
def test_an_owner_who_cannot_answer_is_skipped_for_the_turn_order(ctx, why):
    enable_roulette()
    owner = agent(online=why != "offline")
    if why == "offline":
        switch.set_available(owner, True)  # switched on, but no connection
    elif why == "busy":
        routing.route_lead(make_lead(department="sales").id)
        assert pool.pending_offer(owner.id) is not None
    else:
        switch.set_available(owner, False)
    second = agent()
    third = agent()
    waited(third, 600)
    waited(second, 60)
    lead = make_lead(make_contact(owner=owner, department="sales"), department="sales")

    offer = offer_of(routing.route_lead(lead.id))

    assert offer.agent_id == third.id
    assert offer.reason == "turn"
    assert reasons(offer.candidates)[owner.id] == why
    assert reasons(offer.candidates)[second.id] == "later"


def test_an_owner_outside_the_lead_department_still_gets_it(ctx):
    enable_roulette()
    sales = agent("sales")
    waited(sales, 3600)
    owner = agent("support")
    lead = make_lead(make_contact(owner=owner, department="sales"), department="sales")

    offer = offer_of(routing.route_lead(lead.id))

    assert offer.agent_id == owner.id
    assert reasons(offer.candidates) == {owner.id: "chosen", sales.id: "later"}


def test_other_departments_agents_are_not_candidates(ctx):
    enable_roulette()
    support = agent("support")
    lead = make_lead(department="sales")

    assert routing.route_lead(lead.id) is None
    assert fresh(lead).state == "queued"
    assert pool.pending_offer(support.id) is None


# ------------------------------------------------------------------ fairness


def test_the_longest_wait_since_an_offer_goes_first_and_then_to_the_back(ctx):
    enable_roulette()
    a, b, c = agent(), agent(), agent()
    waited(a, 100)
    waited(b, 300)
    waited(c, 200)

    first = offer_of(routing.route_lead(make_lead(department="sales").id))
    second = offer_of(routing.route_lead(make_lead(department="sales").id))
    third = offer_of(routing.route_lead(make_lead(department="sales").id))

    assert [first.agent_id, second.agent_id, third.agent_id] == [b.id, c.id, a.id]
    # The one just asked is at the back of the list of the next offer.
    assert [c_["id"] for c_ in second.candidates][-1] == b.id


def test_switching_on_counts_as_the_start_of_the_wait(ctx):
    enable_roulette()
    old_hand = agent()
    newcomer = agent()
    waited(newcomer, 60)
    # Last offered an hour ago, but only switched on again just now.
    state = db.session.get(AgentState, old_hand.id)
    state.last_offer_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    switch.set_available(old_hand, False)
    switch.set_available(old_hand, True)

    offer = offer_of(routing.route_lead(make_lead(department="sales").id))

    assert offer.agent_id == newcomer.id


def test_offers_spread_evenly_over_agents_who_accept_and_decline(ctx):
    enable_roulette(rounds=2)
    agents = [agent() for _ in range(3)]
    by_id = {a.id: a for a in agents}
    offered = {a.id: 0 for a in agents}
    answers = 0
    for _n in range(20):
        lead = make_lead(department="sales")
        routing.route_lead(lead.id)
        while (pending := pending_for(lead)) is not None:
            offered[pending.agent_id] += 1
            answers += 1
            who = by_id[pending.agent_id]
            # A fixed mix of answers: every third decision is an accept.
            if answers % 3 == 0:
                decisions.accept(who, pending.id)
            else:
                decisions.decline(who, pending.id)
    counts = sorted(offered.values())
    assert sum(counts) == answers > 20
    assert counts[-1] - counts[0] <= 1, offered


# -------------------------------------------------------------- skip reasons


def test_every_skip_reason_is_recorded_with_its_agent(ctx):
    enable_roulette(rounds=1)
    set_account(roulette_capacity=1)

    at_cap = agent()
    decisions.accept(
        at_cap, offer_of(routing.route_lead(make_lead(department="sales").id)).id
    )
    busy = agent()
    assert routing.route_lead(make_lead(department="sales").id).agent_id == busy.id
    decliner = agent()
    lead = make_lead(department="sales")
    decisions.decline(decliner, offer_of(routing.route_lead(lead.id)).id)

    # Nobody could take it: it waits, and says why.
    assert fresh(lead).state == "queued"
    assert reasons(fresh(lead).routing) == {
        at_cap.id: Skip.CAPACITY,
        busy.id: Skip.BUSY,
        decliner.id: Skip.DECLINED,
    }

    offline = agent(online=False)
    switch.set_available(offline, True)  # the switch is on, no connection
    paused = agent(online=False)
    presence.touch(paused.account_id, paused.id)  # connected, switch off
    chosen = agent()  # switching on picks up the waiting lead

    offer = pool.pending_offer(chosen.id)
    assert offer is not None and offer.lead_id == lead.id
    assert reasons(offer.candidates) == {
        chosen.id: Skip.CHOSEN,
        at_cap.id: Skip.CAPACITY,
        busy.id: Skip.BUSY,
        decliner.id: Skip.DECLINED,
        offline.id: Skip.OFFLINE,
        paused.id: Skip.PAUSED,
    }
    assert {c["name"] for c in offer.candidates} >= {chosen.name, paused.name}


def test_capacity_counts_only_accepted_unattended_leads(ctx):
    enable_roulette()
    set_account(roulette_capacity=1)
    solo = agent()
    first = make_lead(department="sales")
    decisions.accept(solo, offer_of(routing.route_lead(first.id)).id)

    second = make_lead(department="sales")
    assert routing.route_lead(second.id) is None
    assert reasons(fresh(second).routing) == {solo.id: Skip.CAPACITY}

    # Attending the first lead frees a place: the waiting one comes at once
    # with the sweep (the safety net that offers waiting leads).
    from portal.contacts.service import add_history

    add_history(solo, first.contact_id, "note", "Called back")
    sweep.sweep()
    assert pool.pending_offer(solo.id).lead_id == second.id

    # No cap: nobody is ever at capacity.
    set_account(roulette_capacity=0)
    plan = pool.plan(current_account(), fresh(make_lead(department="sales")))
    assert Skip.CAPACITY not in reasons(plan.candidates).values()


def _closed_now(now: datetime) -> dict:
    """Hours that are certainly closed at `now`: only two days later."""
    day = hours.DAYS[(now.weekday() + 2) % 7]
    return {day: ["09:00", "10:00"]}


def test_outside_working_hours_nobody_is_asked_and_the_lead_waits(ctx):
    enable_roulette()
    online = agent()
    department = structure.get_or_create_department(current_account(), "sales")
    department.working_hours = _closed_now(utcnow())
    department.timezone = "UTC"
    db.session.commit()
    lead = make_lead(department="sales")

    assert routing.route_lead(lead.id) is None
    assert reasons(fresh(lead).routing) == {online.id: Skip.HOURS}

    # Opening hours again: the sweep hands it out.
    department.working_hours = None
    db.session.commit()
    sweep.sweep()
    assert pool.pending_offer(online.id).lead_id == lead.id


def test_working_hours_are_read_in_the_department_time_zone(ctx):
    enable_roulette()
    online = agent()
    department = structure.get_or_create_department(current_account(), "sales")
    department.working_hours = {"mon": ["09:00", "18:00"]}
    department.timezone = "America/Sao_Paulo"  # UTC-3, no DST since 2019
    db.session.commit()
    lead = fresh(make_lead(department="sales"))
    account = current_account()

    # Monday 2024-06-03 11:00 UTC = 08:00 in São Paulo: closed.
    early = pool.plan(account, lead, datetime(2024, 6, 3, 11, 0, tzinfo=UTC))
    assert early.chosen is None
    assert reasons(early.candidates) == {online.id: Skip.HOURS}
    # 12:30 UTC = 09:30 there: open.
    open_ = pool.plan(account, lead, datetime(2024, 6, 3, 12, 30, tzinfo=UTC))
    assert open_.chosen is not None and open_.chosen.id == online.id
    # 21:00 UTC = 18:00 there: closed again (the end is exclusive).
    late = pool.plan(account, lead, datetime(2024, 6, 3, 21, 0, tzinfo=UTC))
    assert late.chosen is None


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 6, 3, 23, 0, tzinfo=UTC), True),  # Monday night
        (datetime(2024, 6, 4, 5, 59, tzinfo=UTC), True),  # early Tuesday
        (datetime(2024, 6, 4, 6, 0, tzinfo=UTC), False),  # Tuesday 06:00
        (datetime(2024, 6, 3, 21, 59, tzinfo=UTC), False),  # before the start
        (datetime(2024, 6, 3, 3, 0, tzinfo=UTC), False),  # Sunday had no span
    ],
)
def test_a_span_past_midnight_covers_the_next_morning(moment, expected):
    assert hours.is_open({"mon": ["22:00", "06:00"]}, "UTC", moment) is expected


def test_no_hours_means_always_open_and_a_missing_day_is_closed():
    monday = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
    assert hours.is_open(None, "UTC", monday)
    assert hours.is_open({}, "UTC", monday)
    assert not hours.is_open({"tue": ["00:00", "23:59"]}, "UTC", monday)


# --------------------------------------------------------------------- rounds


def test_rounds_ask_everyone_again_then_park_the_lead_for_newcomers(ctx):
    enable_roulette(rounds=2)
    a, b = agent(), agent()
    waited(a, 20)
    waited(b, 10)
    lead = make_lead(department="sales")
    routing.route_lead(lead.id)

    asked = []
    while (pending := pending_for(lead)) is not None:
        asked.append((pending.agent_id, pending.round))
        decisions.decline(db.session.get(User, pending.agent_id), pending.id)

    assert asked == [(a.id, 1), (b.id, 1), (a.id, 2), (b.id, 2)]
    parked = fresh(lead)
    assert parked.state == "queued"
    assert parked.exhausted_at is not None
    assert reasons(parked.routing) == {a.id: Skip.DECLINED, b.id: Skip.DECLINED}

    # Switching off and on again does not bring it back to those who saw it...
    switch.set_available(a, False)
    switch.set_available(a, True)
    sweep.sweep()
    assert pending_for(lead) is None
    # ...but an agent who never saw it gets it.
    newcomer = agent()
    assert pool.pending_offer(newcomer.id).lead_id == lead.id


def test_a_parked_lead_skips_whoever_saw_it_in_any_round(ctx):
    enable_roulette(rounds=2)
    a, b = agent(), agent()
    waited(a, 20)
    waited(b, 10)
    lead = make_lead(department="sales")
    decisions.decline(a, offer_of(routing.route_lead(lead.id)).id)
    decisions.decline(b, pending_for(lead).id)
    assert (pending_for(lead).agent_id, pending_for(lead).round) == (a.id, 2)
    switch.set_available(b, False)  # b is away for the whole second round

    decisions.decline(a, pending_for(lead).id)

    assert fresh(lead).exhausted_at is not None
    # b declined it in round 1: coming back does not bring it to her.
    switch.set_available(b, True)
    sweep.sweep()
    assert pending_for(lead) is None
    assert reasons(pool.plan(current_account(), fresh(lead)).candidates) == {
        a.id: Skip.DECLINED,
        b.id: Skip.DECLINED,
    }


def test_a_decline_while_others_are_busy_waits_for_them_not_a_new_round(ctx):
    enable_roulette(rounds=3)
    a, b = agent(), agent()
    waited(a, 20)
    waited(b, 10)
    other = make_lead(department="sales")
    routing.route_lead(other.id)  # a is busy with it
    lead = make_lead(department="sales")
    offer = offer_of(routing.route_lead(lead.id))
    assert offer.agent_id == b.id

    decisions.decline(b, offer.id)

    assert fresh(lead).round == 1
    assert pending_for(lead) is None
    # a answers the other lead: now free, a is asked in round 1 still.
    decisions.accept(a, pending_for(other).id)
    assert (pending_for(lead).agent_id, pending_for(lead).round) == (a.id, 1)


# -------------------------------------------------- hybrid mode, departments


def test_hybrid_mode_offers_only_to_agents_flagged_for_web_leads(ctx):
    enable_roulette(process_mode="3")
    flagged = agent()
    unflagged = agent(receives_web_leads=False)
    waited(unflagged, 3600)
    waited(flagged, 1)

    offer = offer_of(routing.route_lead(make_lead(department="sales").id))

    assert offer.agent_id == flagged.id
    assert unflagged.id not in reasons(offer.candidates)


def test_outside_hybrid_mode_the_flag_does_not_matter(ctx):
    enable_roulette(process_mode="1")
    unflagged = agent(receives_web_leads=False)

    offer = offer_of(routing.route_lead(make_lead(department="sales").id))

    assert offer.agent_id == unflagged.id


def test_a_lead_without_department_may_go_to_any_receiver(ctx):
    enable_roulette()
    make_user("manager", departments=["sales"])  # may not receive leads
    sales = agent("sales")
    nowhere = make_user("attendant")
    go_online(nowhere)
    support = agent("support")
    waited(sales, 10)
    waited(nowhere, 30)
    waited(support, 20)
    lead = make_lead()

    offer = offer_of(routing.route_lead(lead.id))

    assert offer.agent_id == nowhere.id
    assert set(reasons(offer.candidates)) == {sales.id, nowhere.id, support.id}
    second = offer_of(routing.route_lead(make_lead().id))
    assert second.agent_id == support.id


def test_a_waiting_lead_without_department_goes_to_the_first_agent_free(ctx):
    enable_roulette()
    lead = make_lead()
    assert routing.route_lead(lead.id) is None  # nobody online

    someone = agent("support")

    assert pool.pending_offer(someone.id).lead_id == lead.id


def test_roulette_off_offers_nothing(ctx):
    online = agent()
    lead = make_lead(department="sales")

    assert routing.route_lead(lead.id) is None
    switch.set_available(online, False)
    switch.set_available(online, True)
    assert sweep.sweep()["expired"] == 0

    assert fresh(lead).state == "queued"
    assert db.session.scalar(select(Offer.id)) is None


def test_a_lead_that_is_no_longer_queued_is_left_alone(ctx):
    enable_roulette()
    first = agent()
    lead = make_lead(department="sales")
    routing.route_lead(lead.id)
    second = agent()

    assert routing.route_lead(lead.id) is None  # already offered
    assert pool.pending_offer(second.id) is None
    assert db.session.scalar(select(db.func.count(Offer.id))) == 1
    assert pool.pending_offer(first.id).lead_id == lead.id


# ---------------------------------------------------------------------- queue


def test_busy_agents_leave_leads_waiting_then_take_them_oldest_first(ctx):
    enable_roulette(rounds=1)
    solo = agent()
    first = make_lead(department="sales")
    routing.route_lead(first.id)
    second = make_lead(department="sales")
    third = make_lead(department="sales")
    fourth = make_lead(department="sales")
    # The newest tries first: arrival order still wins when she is free.
    for lead in (fourth, third, second):
        assert routing.route_lead(lead.id) is None
        assert reasons(fresh(lead).routing) == {solo.id: Skip.BUSY}

    decisions.accept(solo, pending_for(first).id)  # freed by an accept
    assert pool.pending_offer(solo.id).lead_id == second.id

    decisions.decline(solo, pending_for(second).id)  # freed by a decline
    assert pool.pending_offer(solo.id).lead_id == third.id

    offer = pending_for(third)  # freed by the clock running out
    offer.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert decisions.expire_offer(offer.id)
    assert pool.pending_offer(solo.id).lead_id == fourth.id


def test_with_nobody_online_leads_wait_and_the_first_to_switch_on_gets_the_oldest(
    ctx,
):
    enable_roulette()
    leads = [make_lead(department="sales") for _ in range(3)]
    for lead in leads:
        assert routing.route_lead(lead.id) is None
        assert fresh(lead).state == "queued"

    someone = agent()

    assert pool.pending_offer(someone.id).lead_id == leads[0].id


def test_a_connection_coming_back_brings_the_waiting_lead_with_the_sweep(ctx):
    enable_roulette()
    switched_on = agent(online=False)
    switch.set_available(switched_on, True)
    lead = make_lead(department="sales")
    assert routing.route_lead(lead.id) is None
    assert reasons(fresh(lead).routing) == {switched_on.id: Skip.OFFLINE}

    presence.touch(switched_on.account_id, switched_on.id)
    figures = sweep.sweep()

    assert figures["dispatched"] == 1
    assert pool.pending_offer(switched_on.id).lead_id == lead.id


def test_presence_has_a_grace_period(ctx):
    enable_roulette()
    someone = agent(online=False)
    switch.set_available(someone, True)
    presence.touch(someone.account_id, someone.id, at=time.time() - 25)
    assert switch.is_online(someone)
    presence.touch(someone.account_id, someone.id, at=time.time() - 31)
    assert not switch.is_online(someone)

    lead = make_lead(department="sales")
    assert routing.route_lead(lead.id) is None
    assert reasons(fresh(lead).routing) == {someone.id: Skip.OFFLINE}


# ----------------------------------------------------------------- concurrency


def test_the_database_refuses_a_second_pending_offer_for_an_agent_or_a_lead(ctx):
    enable_roulette(rounds=1)
    solo = agent()
    bystander = agent(online=False)
    lead = make_lead(department="sales")
    offer = offer_of(routing.route_lead(lead.id))
    other = make_lead(department="sales")
    other.state = "assigned"  # out of the roulette's way
    db.session.commit()

    def insert(lead_id: int, agent_id: int) -> None:
        db.session.add(
            Offer(
                account_id=offer.account_id,
                lead_id=lead_id,
                agent_id=agent_id,
                reason="turn",
                state=OfferState.PENDING,
                expires_at=offer.expires_at,
            )
        )
        db.session.commit()

    with pytest.raises(IntegrityError):
        insert(other.id, solo.id)
    db.session.rollback()
    with pytest.raises(IntegrityError):
        insert(lead.id, bystander.id)
    db.session.rollback()
    # Ended offers are not held against anyone.
    decisions.decline(solo, offer.id)
    assert fresh(lead).exhausted_at is not None
    insert(other.id, solo.id)
    insert(lead.id, bystander.id)


def _route_all_at_once(app: Flask, lead_ids: list[int]) -> list[BaseException]:
    barrier = threading.Barrier(len(lead_ids))
    errors: list[BaseException] = []

    def run(lead_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                routing.route_lead(lead_id)
            except BaseException as exc:  # reported to the test below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in lead_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize("agents", [1, 3])
def test_leads_routed_at_once_never_give_an_agent_two_offers(app, agents):
    for attempt in range(5):
        with app.app_context():
            if attempt == 0:
                enable_roulette()
            team = [agent().id for _ in range(agents)]
            lead_ids = [make_lead(department="sales").id for _ in range(6)]
            db.session.remove()

        errors = _route_all_at_once(app, lead_ids)

        with app.app_context():
            assert not errors, errors
            pending = list(
                db.session.scalars(
                    select(Offer).where(
                        Offer.lead_id.in_(lead_ids), Offer.state == "pending"
                    )
                )
            )
            holders = [o.agent_id for o in pending]
            assert sorted(holders) == sorted(team)
            states = db.session.scalars(select(Lead.state).where(Lead.id.in_(lead_ids)))
            assert sorted(states) == sorted(
                ["offered"] * agents + ["queued"] * (6 - agents)
            )
            # Free the agents for the next attempt.
            for offer in pending:
                offer.state = OfferState.CANCELLED
            for user_id in team:
                db.session.get(AgentState, user_id).available = False
            db.session.query(Lead).filter(Lead.id.in_(lead_ids)).update(
                {"state": "assigned"}
            )
            db.session.commit()
            db.session.remove()


def test_leads_piled_up_in_a_closed_department_do_not_hide_an_open_one(ctx):
    enable_roulette(rounds=1)
    both = agent("sales", "support")
    busy_with = make_lead(department="support")
    routing.route_lead(busy_with.id)
    assert pool.pending_offer(both.id).lead_id == busy_with.id
    support = structure.get_or_create_department(current_account(), "support")
    support.working_hours = None
    sales = structure.get_or_create_department(current_account(), "sales")
    sales.working_hours = _closed_now(utcnow())
    db.session.commit()
    # A night of sales leads (more than one scan's worth), then one for
    # support, which is open; she is busy when each arrives.
    for _n in range(pool.SCAN_LIMIT * 3 + 1):
        routing.route_lead(make_lead(department="sales").id)
    waiting = make_lead(department="support")
    assert routing.route_lead(waiting.id) is None

    decisions.accept(both, pending_for(busy_with).id)

    assert pool.pending_offer(both.id).lead_id == waiting.id


def test_an_agent_who_may_not_take_web_leads_is_not_offered_waiting_ones(ctx):
    enable_roulette(process_mode="3")
    leads = [make_lead(department="sales") for _ in range(3)]
    unflagged = agent(receives_web_leads=False)

    assert routing.offer_to_agent(unflagged.id) is None
    assert sweep.sweep()["dispatched"] == 0
    for lead in leads:
        assert fresh(lead).state == "queued"
    flagged = agent()
    assert pool.pending_offer(flagged.id).lead_id == leads[0].id


def test_an_offer_is_stamped_after_its_wait_for_the_write_lock(ctx):
    """The agent's time to answer starts when the offer is written, not when
    its transaction began waiting behind another writer (SQLite)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite makes writers wait for one another")
    from sqlalchemy import text

    enable_roulette(timeout=60)
    agent()
    lead = make_lead(department="sales")
    released: list[datetime] = []
    holder = db.engine.connect()
    holder.execute(text("UPDATE account SET name = name"))  # holds the write lock

    def release() -> None:
        time.sleep(0.3)
        released.append(utcnow())
        holder.commit()
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        offer = offer_of(routing.route_lead(lead.id))
    finally:
        thread.join(timeout=10)
    assert offer.offered_at >= released[0]
    assert offer.expires_at - offer.offered_at == timedelta(seconds=60)
