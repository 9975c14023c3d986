"""What an agent's answer does: accept, decline, the clock running out, being
taken offline, a person assigning the contact by hand, and attending the lead.

Deadlines are moved into the past in the database (no clock mocking); races
run in real threads, each with its own app context and database session.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.contacts.assignment import assign
from portal.contacts.service import add_history, update_contact
from portal.errors import Conflict, NotFound
from portal.extensions import db
from portal.models import (
    AgentState,
    AssignmentLog,
    Contact,
    HistoryEntry,
    Lead,
    Offer,
    OfferState,
    User,
)
from portal.models.base import utcnow
from portal.realtime import presence
from portal.roulette import choice, decisions, placement, pool, routing, sweep, switch
from portal.settings.service import current_account
from portal.users.service import suspend_user
from tests.factories import (
    enable_roulette,
    go_online,
    make_contact,
    make_lead,
    make_user,
)
from tests.roulette_helpers import (
    agent,
    fresh,
    offered,
    offers_of,
    overdue,
    two_agents,
)

# --------------------------------------------------------------------- accept


def test_accept_makes_the_agent_the_owner_with_log_timeline_and_speed(ctx):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    db.session.execute(
        db.update(Lead)
        .where(Lead.id == lead.id)
        .values(created_at=utcnow() - timedelta(seconds=42))
    )
    db.session.commit()
    offer = offered(lead)
    assert offer.agent_id == first.id
    assert {c["id"]: c["reason"] for c in offer.candidates} == {
        first.id: "chosen",
        second.id: "later",
    }

    result = decisions.accept(first, offer.id)

    assert result.state == OfferState.ACCEPTED and result.decided_at is not None
    lead = fresh(lead)
    assert lead.state == "assigned"
    assert lead.accepted_by_id == first.id
    assert 42 <= lead.speed_to_lead_seconds < 60
    contact = db.session.get(Contact, lead.contact_id, populate_existing=True)
    assert contact.owner_id == first.id
    assert contact.status == "assigned"
    log = db.session.scalar(
        select(AssignmentLog).where(AssignmentLog.contact_id == contact.id)
    )
    assert (log.to_user_id, log.by_user_id, log.how) == (first.id, first.id, "roulette")
    entry = db.session.scalar(
        select(HistoryEntry).where(
            HistoryEntry.contact_id == contact.id, HistoryEntry.kind == "assignment"
        )
    )
    assert entry.data["how"] == "roulette" and entry.data["to"] == first.name
    # Nobody else is asked about an accepted lead.
    assert pool.pending_offer(second.id) is None


def test_accept_by_the_owner_keeps_the_contact_and_logs_no_change(ctx):
    enable_roulette()
    owner = agent()
    contact = make_contact(owner=owner, department="sales")
    offer = offered(make_lead(contact, department="sales"))
    assert offer.reason == "owner"

    decisions.accept(owner, offer.id)

    assert fresh(contact).owner_id == owner.id
    assert (
        db.session.scalar(
            select(func.count(AssignmentLog.id)).where(AssignmentLog.how == "roulette")
        )
        == 0
    )


def test_accept_of_another_owner_s_contact_logs_the_change_from_them(ctx):
    enable_roulette()
    away = agent(online=False)  # the owner is offline
    taker = agent()
    contact = make_contact(owner=away, department="sales")
    offer = offered(make_lead(contact, department="sales"))

    decisions.accept(taker, offer.id)

    assert fresh(contact).owner_id == taker.id
    log = db.session.scalar(
        select(AssignmentLog).where(AssignmentLog.how == "roulette")
    )
    assert (log.from_user_id, log.to_user_id) == (away.id, taker.id)


# -------------------------------------------------------------------- decline


def test_decline_passes_the_lead_to_the_next_agent(ctx):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)

    result = decisions.decline(first, offer.id)

    assert result.state == OfferState.DECLINED and result.decided_at is not None
    assert pool.pending_offer(second.id).lead_id == lead.id
    assert fresh(lead).state == "offered"
    assert offers_of(lead) == [(first.id, "declined"), (second.id, "pending")]


# ------------------------------------------------------------------ conflicts


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ("accept", "accept", "You already accepted this lead."),
        ("accept", "decline", "You already accepted this lead."),
        ("decline", "accept", "You already declined this lead."),
        ("decline", "decline", "You already declined this lead."),
    ],
)
def test_a_second_decision_is_a_conflict_that_says_why(ctx, first, then, message):
    enable_roulette()
    solo = agent()
    offer = offered(make_lead(department="sales"))
    getattr(decisions, first)(solo, offer.id)

    with pytest.raises(Conflict) as refused:
        getattr(decisions, then)(solo, offer.id)

    assert str(refused.value) == message
    assert fresh(offer).state == {"accept": "accepted", "decline": "declined"}[first]


@pytest.mark.parametrize("decision", ["accept", "decline"])
def test_someone_else_s_offer_does_not_exist_for_them(ctx, decision):
    enable_roulette()
    first, second = two_agents()
    offer = offered(make_lead(department="sales"))

    with pytest.raises(NotFound):
        getattr(decisions, decision)(second, offer.id)
    for bogus in (offer.id + 1000, "abc", None):
        with pytest.raises(NotFound):
            getattr(decisions, decision)(first, bogus)

    assert fresh(offer).state == OfferState.PENDING


@pytest.mark.parametrize("decision", ["accept", "decline"])
def test_a_decision_after_the_deadline_is_refused_and_the_lead_moves_on(ctx, decision):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    overdue(offer)

    with pytest.raises(Conflict, match="Too late"):
        getattr(decisions, decision)(first, offer.id)

    assert fresh(offer).state == OfferState.EXPIRED
    assert pool.pending_offer(second.id).lead_id == lead.id
    assert (
        db.session.get(Contact, lead.contact_id, populate_existing=True).owner_id
        is None
    )


def test_a_withdrawn_offer_says_so(ctx):
    enable_roulette()
    solo = agent()
    offer = offered(make_lead(department="sales"))
    switch.set_available(solo, False)

    with pytest.raises(Conflict, match="withdrawn"):
        decisions.accept(solo, offer.id)
    assert fresh(offer).state == OfferState.CANCELLED


# --------------------------------------------------------------------- expiry


def test_expiry_waits_for_the_deadline_and_hands_off_once(ctx):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)

    assert decisions.expire_offer(offer.id) is False  # not due yet
    assert fresh(offer).state == OfferState.PENDING

    overdue(offer)
    assert decisions.expire_offer(offer.id) is True
    assert decisions.expire_offer(offer.id) is False

    assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]
    assert fresh(offer).decided_at is not None


def test_expiry_with_an_explicit_now_past_the_deadline(ctx):
    enable_roulette()
    first, second = two_agents()
    offer = offered(make_lead(department="sales"))
    deadline = fresh(offer).expires_at

    assert (
        decisions.expire_offer(offer.id, now=deadline - timedelta(seconds=1)) is False
    )
    assert decisions.expire_offer(offer.id, now=deadline + timedelta(seconds=1)) is True
    assert pool.pending_offer(second.id) is not None


def _race(app: Flask, offer_id: int, agent_id: int) -> tuple[str, bool]:
    """Accept and expire the offer from two threads at once."""
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def accept() -> None:
        with app.app_context():
            try:
                user = db.session.get(User, agent_id)
                barrier.wait(timeout=10)
                decisions.accept(user, offer_id)
                outcome["accept"] = "accepted"
            except Conflict:
                outcome["accept"] = "refused"
            except BaseException as exc:
                outcome["accept"] = exc
            finally:
                db.session.remove()

    def expire() -> None:
        with app.app_context():
            try:
                deadline = db.session.get(Offer, offer_id).expires_at
                db.session.rollback()
                barrier.wait(timeout=10)
                # The job runs exactly at the deadline.
                outcome["expire"] = decisions.expire_offer(offer_id, now=deadline)
            except BaseException as exc:
                outcome["expire"] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=accept), threading.Thread(target=expire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcome["accept"], outcome["expire"]


def test_accept_racing_expiry_at_the_deadline_has_exactly_one_outcome(app):
    outcomes = []
    for _attempt in range(25):
        with app.app_context():
            enable_roulette()
            solo = agent()
            lead = make_lead(department="sales")
            offer = offered(lead)
            # The deadline is now: both the accept (just before it) and the
            # expiry (exactly at it) qualify; only one may apply.
            db.session.execute(
                db.update(Offer)
                .where(Offer.id == offer.id)
                .values(expires_at=utcnow() + timedelta(milliseconds=30))
            )
            db.session.commit()
            ids = (offer.id, solo.id, lead.id, lead.contact_id)
            db.session.remove()

        accepted, expired = _race(app, ids[0], ids[1])

        with app.app_context():
            assert accepted in ("accepted", "refused"), accepted
            assert expired in (True, False), expired
            # A refused late accept may expire the offer itself, before the
            # job does: then neither call reports the expiry as its own,
            # but it still happened exactly once.
            assert not (accepted == "accepted" and expired)
            state = db.session.get(Offer, ids[0]).state
            lead = db.session.get(Lead, ids[2])
            owner = db.session.get(Contact, ids[3]).owner_id
            offers = db.session.scalar(
                select(func.count(Offer.id)).where(Offer.lead_id == ids[2])
            )
            if accepted == "accepted":
                assert state == OfferState.ACCEPTED
                assert (lead.state, owner, offers) == ("assigned", ids[1], 1)
            else:
                assert state == OfferState.EXPIRED
                assert lead.state != "assigned" and owner is None
                # One hand-off: the only agent is asked again in round 2.
                assert offers == 2
            outcomes.append(state)
            # Out of the way of the next attempt.
            db.session.execute(db.update(AgentState).values(available=False))
            db.session.execute(
                db.update(Offer)
                .where(Offer.state == "pending")
                .values(state=OfferState.CANCELLED)
            )
            db.session.commit()
            db.session.remove()
    assert len(outcomes) == 25


def test_three_expiries_in_a_row_switch_the_agent_off(ctx):
    enable_roulette(rounds=1)
    absent = agent()
    for n in range(decisions.AUTO_PAUSE_AFTER):
        offer = offered(make_lead(department="sales"))
        assert offer.agent_id == absent.id
        overdue(offer)
        assert decisions.expire_offer(offer.id)
        still_on = db.session.get(AgentState, absent.id, populate_existing=True)
        assert still_on.available is (n < decisions.AUTO_PAUSE_AFTER - 1)

    assert not switch.is_online(absent)
    # Paused, not gone: the connection stays, the switch is off.
    assert presence.is_live(absent.account_id, absent.id)
    lead = make_lead(department="sales")
    assert routing.route_lead(lead.id) is None
    assert fresh(lead).routing[0]["reason"] == "paused"


def test_an_answer_between_expiries_resets_the_count(ctx):
    enable_roulette(rounds=1)
    absent = agent()
    for n in range(decisions.AUTO_PAUSE_AFTER + 1):
        offer = offered(make_lead(department="sales"))
        if n == 1:
            decisions.decline(absent, offer.id)
            continue
        overdue(offer)
        decisions.expire_offer(offer.id)

    assert db.session.get(AgentState, absent.id, populate_existing=True).available


def test_switching_back_on_after_a_pause_starts_a_new_count(ctx):
    enable_roulette(rounds=1)
    absent = agent()
    for _n in range(decisions.AUTO_PAUSE_AFTER):
        offer = offered(make_lead(department="sales"))
        overdue(offer)
        decisions.expire_offer(offer.id)
    assert not db.session.get(AgentState, absent.id, populate_existing=True).available

    switch.set_available(absent, True)
    offer = offered(make_lead(department="sales"))
    overdue(offer)
    decisions.expire_offer(offer.id)

    # One miss after coming back is not three in a row.
    assert db.session.get(AgentState, absent.id, populate_existing=True).available


# ------------------------------------------------------------ offline, by hand


def test_suspending_an_agent_takes_them_offline_and_passes_their_offer(ctx):
    enable_roulette()
    admin = make_user("admin")
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    assert offer.agent_id == first.id

    suspend_user(first, acting_user=admin)

    assert fresh(offer).state == OfferState.CANCELLED
    assert pool.pending_offer(second.id).lead_id == lead.id
    assert not presence.is_live(first.account_id, first.id)
    assert not db.session.get(AgentState, first.id, populate_existing=True).available
    # Suspended users are not candidates any more, even with a live mark.
    presence.touch(first.account_id, first.id)
    other = make_lead(department="sales")
    routing.route_lead(other.id)
    assert first.id not in {c["id"] for c in fresh(other).routing or ()}


def test_switching_off_withdraws_the_pending_offer_and_passes_it_on(ctx):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)

    switch.set_available(first, False)

    assert fresh(offer).state == OfferState.CANCELLED
    assert pool.pending_offer(second.id).lead_id == lead.id


def test_assigning_the_contact_by_hand_withdraws_the_offer(ctx):
    enable_roulette()
    admin = make_user("admin")
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    waiting = make_lead(department="sales")
    assert routing.route_lead(waiting.id).agent_id == second.id

    assign(admin, lead.contact_id, second.id)

    assert fresh(offer).state == OfferState.CANCELLED
    lead = fresh(lead)
    assert (lead.state, lead.accepted_by_id) == ("assigned", second.id)
    assert lead.speed_to_lead_seconds is None  # not the roulette's doing
    # The agent whose offer was withdrawn is free for the next waiting lead.
    third = make_lead(department="sales")
    assert routing.route_lead(third.id).agent_id == first.id


def test_claiming_a_contact_whose_lead_waits_takes_it_out_of_the_queue(ctx):
    enable_roulette()
    claimer = make_user("attendant", departments=["sales"])
    lead = make_lead(department="sales")
    assert routing.route_lead(lead.id) is None  # nobody online

    assign(claimer, lead.contact_id)

    assert fresh(lead).state == "assigned"
    go_online(claimer)
    assert pool.pending_offer(claimer.id) is None


def test_reassigning_an_owned_contact_withdraws_the_offer_of_its_new_lead(ctx):
    enable_roulette()
    manager = make_user("admin")
    away = agent(online=False)
    taker = agent()
    contact = make_contact(owner=away, department="sales")
    lead = make_lead(contact, department="sales")
    offer = offered(lead)  # the owner is offline: the turn goes to `taker`
    assert offer.agent_id == taker.id

    assign(manager, contact.id, manager.id)

    assert fresh(offer).state == OfferState.CANCELLED
    with pytest.raises(Conflict):
        decisions.accept(taker, offer.id)
    assert fresh(contact).owner_id == manager.id
    assert fresh(lead).state == "assigned"


# ----------------------------------------------------------------- attending


def test_the_accepting_agent_s_first_note_marks_the_lead_attended(ctx):
    enable_roulette()
    admin = make_user("admin")
    solo = agent()
    lead = make_lead(department="sales")
    db.session.execute(
        db.update(Lead)
        .where(Lead.id == lead.id)
        .values(created_at=utcnow() - timedelta(seconds=90))
    )
    db.session.commit()
    decisions.accept(solo, offered(lead).id)

    add_history(admin, lead.contact_id, "note", "Someone else writes first")
    assert fresh(lead).attended_at is None
    contact = db.session.get(Contact, lead.contact_id, populate_existing=True)
    assert contact.attended_at is None

    add_history(solo, lead.contact_id, "call", "Called the customer")
    lead = fresh(lead)
    assert lead.attended_at is not None
    assert 90 <= lead.first_response_seconds < 120
    first = lead.attended_at

    add_history(solo, lead.contact_id, "note", "And again")
    assert fresh(lead).attended_at == first


def test_a_note_by_a_later_owner_does_not_attend_the_lead_for_the_accepting_one(
    ctx,
):
    enable_roulette()
    manager = make_user("admin")
    solo = agent()
    later = make_user("attendant", departments=["sales"])
    lead = make_lead(department="sales")
    decisions.accept(solo, offered(lead).id)
    assign(manager, lead.contact_id, later.id)

    add_history(later, lead.contact_id, "note", "Took over")

    assert fresh(lead).attended_at is None
    assert fresh(lead).first_response_seconds is None
    contact = db.session.get(Contact, lead.contact_id, populate_existing=True)
    assert contact.attended_at is not None  # the contact itself was attended


def test_an_edit_by_the_accepting_agent_marks_the_lead_attended(ctx):
    from portal.contacts.cleaning import ContactInput

    enable_roulette()
    solo = agent()
    lead = make_lead(department="sales")
    decisions.accept(solo, offered(lead).id)
    contact = db.session.get(Contact, lead.contact_id)

    update_contact(
        solo,
        contact.id,
        ContactInput(name="Renamed", email=contact.email, department_id=None),
    )

    assert fresh(lead).attended_at is not None
    assert fresh(lead).first_response_seconds is not None


def test_an_owner_accepting_a_new_lead_of_an_attended_contact_attends_it_again(
    ctx,
):
    enable_roulette()
    owner = agent()
    contact = make_contact(owner=owner, department="sales")
    add_history(owner, contact.id, "note", "Worked on it last week")
    assert fresh(contact).attended_at is not None

    lead = make_lead(contact, department="sales")
    decisions.accept(owner, offered(lead).id)
    add_history(owner, contact.id, "note", "Answered the new inquiry")

    lead = fresh(lead)
    assert lead.attended_at is not None
    assert lead.first_response_seconds is not None


def test_an_accept_between_a_hand_assignment_and_its_withdrawal_is_refused(ctx):
    enable_roulette()
    manager = make_user("admin")
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    waiting = make_lead(department="sales")
    assert routing.route_lead(waiting.id).agent_id == second.id
    # What assign() has committed before it calls lead_assigned_by_hand: the
    # contact is the manager's, the offer is still pending.
    db.session.execute(
        db.update(Contact)
        .where(Contact.id == lead.contact_id)
        .values(owner_id=manager.id, assigned_at=utcnow())
    )
    db.session.commit()

    with pytest.raises(Conflict, match="withdrawn"):
        decisions.accept(first, offer.id)

    assert (
        db.session.get(Contact, lead.contact_id, populate_existing=True).owner_id
        == manager.id
    )
    assert fresh(offer).state == OfferState.CANCELLED
    lead = fresh(lead)
    assert (lead.state, lead.accepted_by_id) == ("assigned", manager.id)
    # The refused agent is free again for the next lead.
    assert routing.route_lead(make_lead(department="sales").id).agent_id == first.id


def test_capacity_forgets_a_lead_whose_contact_was_handed_to_someone_else(ctx):
    enable_roulette()
    manager = make_user("admin")
    current_account().roulette_capacity = 1
    db.session.commit()
    solo = agent()
    lead = make_lead(department="sales")
    decisions.accept(solo, offered(lead).id)
    second = make_lead(department="sales")
    assert routing.route_lead(second.id) is None  # at the cap

    assign(manager, lead.contact_id, manager.id)
    sweep.sweep()

    # The reassigned lead is no longer solo's to answer.
    assert pool.pending_offer(solo.id).lead_id == second.id


def _assign_and_route_at_once(
    app: Flask, manager_id: int, contact_id: int, lead_id: int
):
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def by_hand() -> None:
        with app.app_context():
            try:
                manager = db.session.get(User, manager_id)
                barrier.wait(timeout=10)
                assign(manager, contact_id, manager_id)
                outcome["assign"] = True
            except BaseException as exc:
                outcome["assign"] = exc
            finally:
                db.session.remove()

    def by_roulette() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                routing.route_lead(lead_id)
                outcome["route"] = True
            except BaseException as exc:
                outcome["route"] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=by_hand), threading.Thread(target=by_roulette)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcome


def test_a_hand_assignment_racing_a_routing_leaves_no_pending_offer_behind(app):
    for attempt in range(20):
        with app.app_context():
            if attempt == 0:
                enable_roulette()
                manager_id = make_user("admin").id
            solo = agent()
            lead = make_lead(department="sales")
            ids = (lead.contact_id, lead.id, solo.id)
            db.session.remove()

        outcome = _assign_and_route_at_once(app, manager_id, ids[0], ids[1])

        with app.app_context():
            assert outcome == {"assign": True, "route": True}, outcome
            lead = db.session.get(Lead, ids[1])
            assert lead.state == "assigned"
            assert lead.accepted_by_id == manager_id
            assert db.session.get(Contact, ids[0]).owner_id == manager_id
            assert pool.pending_offer(ids[2]) is None
            db.session.execute(db.update(AgentState).values(available=False))
            db.session.commit()
            db.session.remove()


def _stale_plan(lead: Lead) -> tuple[Lead, choice.Plan]:
    """The lead as read now, and the plan made of it now (to place later,
    once the world moved on)."""
    stale_lead = fresh(lead)
    return stale_lead, pool.plan(current_account(), stale_lead)


def _place_stale(stale: tuple[Lead, choice.Plan]) -> placement.Placed | str:
    account = current_account()
    stale_lead, stale_plan = stale
    return placement.place(
        stale_lead,
        stale_plan,
        account_id=account.id,
        timeout=account.roulette_offer_timeout,
    )


def test_a_stale_plan_for_an_agent_another_routing_took_writes_nothing(ctx):
    # Two routings chose the same free agent for two leads; the second finds
    # them holding the first's offer: its lead stays queued, their turn keeps
    # the first offer's time, and the caller may try the next agent.
    enable_roulette()
    only = agent()
    first, second = make_lead(department="sales"), make_lead(department="sales")
    stale = _stale_plan(second)
    assert stale[1].chosen.id == only.id

    taken = offered(first)
    assert taken.agent_id == only.id
    turn = db.session.get(AgentState, only.id, populate_existing=True).last_offer_at

    assert _place_stale(stale) == placement.AGENT_TAKEN
    assert fresh(second).state == "queued" and offers_of(second) == []
    state = db.session.get(AgentState, only.id, populate_existing=True)
    assert state.last_offer_at == turn
    assert offers_of(first) == [(only.id, "pending")]


def test_a_stale_plan_never_asks_again_an_agent_who_declined_meanwhile(ctx):
    # Plans are read without locks: one made before a decline must not land
    # after it and offer the lead to the same agent again in the same round.
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    stale = _stale_plan(lead)
    assert stale[1].chosen.id == first.id

    offer = offered(lead)
    assert offer.agent_id == first.id
    assert offered(make_lead(department="sales")).agent_id == second.id
    decisions.decline(first, offer.id)
    assert fresh(lead).state == "queued"  # second is busy: the lead waits

    assert _place_stale(stale) == placement.LEAD_MOVED
    assert offers_of(lead) == [(first.id, "declined")]
