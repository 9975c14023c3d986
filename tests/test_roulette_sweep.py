"""The roulette's jobs and its clock: expiry jobs run by a real RQ worker,
the sweep that expires overdue offers (no job is scheduled per offer), offers
waiting leads to free agents, alerts managers about long waits and forgets
stale presence marks."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AgentState, Department, Lead, Notification
from portal.models.base import utcnow
from portal.org.department_hours import set_department_hours
from portal.queue import enqueue, get_queue
from portal.realtime import presence
from portal.roulette import decisions, pool, routing, sweep, switch
from portal.settings.service import current_account
from tests.factories import enable_roulette, make_lead, make_user
from tests.roulette_helpers import agent, offered, offers_of, overdue, two_agents


def waited(lead: Lead, minutes: float) -> None:
    db.session.execute(
        db.update(Lead)
        .where(Lead.id == lead.id)
        .values(created_at=utcnow() - timedelta(minutes=minutes))
    )
    db.session.commit()


def alerts() -> list[tuple[int, int]]:
    return [
        (n.user_id, n.data["lead_id"])
        for n in db.session.scalars(
            select(Notification)
            .execution_options(populate_existing=True)
            .where(Notification.kind == "lead_waiting")
            .order_by(Notification.user_id)
        )
    ]


# ---------------------------------------------------------------- expiry job


def test_routing_schedules_no_job_for_the_deadline(ctx):
    # The worker's expiry sweep is the one clock: a job per offer would only
    # cost CPU to schedule and unschedule.
    enable_roulette(timeout=45)
    agent()
    offer = offered(make_lead(department="sales"))

    queue = get_queue()
    assert offer.expires_at > utcnow()
    assert queue.scheduled_job_registry.get_job_ids() == []
    assert queue.get_job_ids() == []


def test_the_expiry_job_run_by_a_worker_passes_the_lead_on(ctx, run_jobs):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    overdue(offer)

    enqueue("jobs.roulette.expire_offer", offer.id)
    assert run_jobs() >= 1

    assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]


def test_the_expiry_job_twice_hands_the_lead_off_once(ctx, run_jobs):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    overdue(offer)

    enqueue("jobs.roulette.expire_offer", offer.id)
    enqueue("jobs.roulette.expire_offer", offer.id)
    run_jobs()

    assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]


def test_the_expiry_job_before_the_deadline_or_after_an_answer_changes_nothing(
    ctx, run_jobs
):
    enable_roulette()
    first, _second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)

    enqueue("jobs.roulette.expire_offer", offer.id)
    run_jobs()
    assert offers_of(lead) == [(first.id, "pending")]

    decisions.accept(first, offer.id)
    overdue(offer)
    enqueue("jobs.roulette.expire_offer", offer.id)
    run_jobs()
    assert offers_of(lead) == [(first.id, "accepted")]


def test_the_route_lead_job_offers_a_queued_lead(ctx, run_jobs):
    enable_roulette()
    solo = agent()
    lead = make_lead(department="sales")

    enqueue("jobs.roulette.route_lead", lead.id)
    run_jobs()

    assert offers_of(lead) == [(solo.id, "pending")]


# --------------------------------------------------------------------- sweep


def test_the_sweep_expires_an_overdue_offer(ctx):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    assert sweep.sweep(full=False) == {"expired": 0}
    overdue(offer)

    figures = sweep.sweep(full=False)

    assert figures == {"expired": 1}
    assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]
    assert sweep.sweep(full=False) == {"expired": 0}


def test_the_sweep_job_through_a_worker(ctx, run_jobs):
    enable_roulette()
    first, second = two_agents()
    lead = make_lead(department="sales")
    offer = offered(lead)
    overdue(offer, seconds=120)

    job = enqueue("jobs.roulette.sweep")
    run_jobs()

    job.refresh()
    assert job.return_value()["expired"] == 1
    assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]


def test_the_sweep_leaves_offers_before_their_deadline(ctx):
    enable_roulette()
    agent()
    lead = make_lead(department="sales")
    offered(lead)

    assert sweep.sweep()["expired"] == 0
    assert [state for _, state in offers_of(lead)] == ["pending"]


def test_the_sweep_offers_waiting_leads_to_agents_who_came_online(ctx):
    enable_roulette()
    leads = [make_lead(department="sales") for _ in range(3)]
    for lead in leads:
        routing.route_lead(lead.id)
    first = agent(online=False)
    second = agent(online=False)
    for user in (first, second):
        switch.set_available(user, True)  # switched on, not connected yet
    assert sweep.sweep()["dispatched"] == 0

    for user in (first, second):
        presence.touch(user.account_id, user.id)
    figures = sweep.sweep()

    assert figures["dispatched"] == 2
    offered_leads = {
        pool.pending_offer(first.id).lead_id,
        pool.pending_offer(second.id).lead_id,
    }
    assert offered_leads == {leads[0].id, leads[1].id}  # the two oldest


def test_three_expiries_by_the_sweep_pause_the_agent(ctx):
    enable_roulette(rounds=1)
    absent = agent()
    for _n in range(decisions.AUTO_PAUSE_AFTER):
        offer = offered(make_lead(department="sales"))
        overdue(offer)
        assert sweep.sweep()["expired"] == 1

    assert not db.session.get(AgentState, absent.id, populate_existing=True).available


def test_the_sweep_forgets_stale_presence_marks(ctx, redis_client):
    enable_roulette()
    stale = agent(online=False)
    live = agent()
    presence.touch(stale.account_id, stale.id, at=time.time() - 120)

    sweep.sweep()

    key = f"roleta:presence:{stale.account_id}"
    assert redis_client.zscore(key, str(stale.id)) is None
    assert redis_client.zscore(key, str(live.id)) is not None


# -------------------------------------------------------------- queue alerts


def test_a_long_wait_alerts_the_department_s_managers_once(ctx):
    enable_roulette()
    account = current_account()
    manager = make_user("manager", departments=["sales"])
    make_user("manager", departments=["support"])
    make_user("admin")
    make_user("attendant", departments=["sales"])  # offline; no alert for her
    lead = make_lead(department="sales")
    routing.route_lead(lead.id)
    waited(lead, account.roulette_queue_alert_minutes + 1)
    recent = make_lead(department="sales")
    waited(recent, account.roulette_queue_alert_minutes - 1)

    assert sweep.sweep()["alerted"] == 1
    assert sweep.sweep()["alerted"] == 0

    assert alerts() == [(manager.id, lead.id)]
    notification = db.session.scalar(select(Notification))
    assert notification.url == f"/contacts/{lead.contact_id}"
    assert notification.data["minutes"] == account.roulette_queue_alert_minutes
    assert db.session.get(Lead, lead.id, populate_existing=True).alerted_at is not None
    assert db.session.get(Lead, recent.id, populate_existing=True).alerted_at is None


def test_only_open_hours_count_towards_a_long_wait(ctx):
    # Sales works 09:00-18:00 UTC every day; support has no hours (always
    # open). Two leads came in at 02:00 on a Monday night.
    enable_roulette()
    account = current_account()
    minutes = account.roulette_queue_alert_minutes
    manager = make_user("manager", departments=["sales", "support"])
    night_sale = make_lead(department="sales")
    night_support = make_lead(department="support")
    sales = db.session.scalar(select(Department).where(Department.key == "sales"))
    set_department_hours(
        account,
        sales.id,
        {day: ("09:00", "18:00") for day in ("mon", "tue", "wed", "thu", "fri")},
        "UTC",
    )
    came_in = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    db.session.execute(db.update(Lead).values(created_at=came_in))
    db.session.commit()

    def alerted_at(hour: int, minute: int) -> list[int]:
        now = datetime(2026, 11, 23, hour, minute, tzinfo=UTC)
        sweep.alert_long_waits(current_account(), now=now)
        return sorted(lead_id for _user, lead_id in alerts())

    # At night only the always-open department's lead alerts.
    assert alerted_at(3, 0) == [night_support.id]
    # Sales opened at 09:00: its agents get the whole threshold first.
    assert alerted_at(9, minutes - 1) == [night_support.id]
    assert alerted_at(9, minutes) == sorted([night_support.id, night_sale.id])
    assert {user_id for user_id, _lead in alerts()} == {manager.id}


def _at_once(app, work, threads: int = 2) -> list[BaseException]:
    """Run `work` in several threads at once, each in its own app context."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                work()
            except BaseException as exc:  # reported by the caller
                errors.append(exc)
            finally:
                db.session.remove()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=60)
    return errors


def test_two_sweeps_at_once_alert_once(app):
    for attempt in range(5):
        with app.app_context():
            if attempt == 0:
                enable_roulette()
                manager_id = make_user("manager", departments=["sales"]).id
            lead_id = make_lead(department="sales").id
            db.session.execute(
                db.update(Lead)
                .where(Lead.id == lead_id)
                .values(created_at=utcnow() - timedelta(hours=1))
            )
            db.session.commit()
            db.session.remove()
        errors = _at_once(app, lambda: sweep.alert_long_waits(current_account()))

        with app.app_context():
            assert not errors, errors
            assert [a for a in alerts() if a[1] == lead_id] == [(manager_id, lead_id)]
            db.session.remove()


def test_without_department_managers_the_admins_are_alerted(ctx):
    enable_roulette()
    admins = sorted([make_user("admin").id, make_user("admin").id])
    make_user("manager", departments=["sales"])
    in_support = make_lead(department="support")
    nowhere = make_lead()
    for lead in (in_support, nowhere):
        waited(lead, 60)

    assert sweep.sweep()["alerted"] == 2

    assert sorted(alerts()) == sorted(
        [(a, in_support.id) for a in admins] + [(a, nowhere.id) for a in admins]
    )


def test_leads_being_offered_or_taken_do_not_alert(ctx):
    enable_roulette()
    make_user("admin")
    solo = agent()
    offered_lead = make_lead(department="sales")
    offered(offered_lead)
    taken = make_lead(department="sales")
    taken.state = "assigned"
    db.session.commit()
    for lead in (offered_lead, taken):
        waited(lead, 60)

    assert sweep.sweep()["alerted"] == 0
    assert alerts() == []
    assert pool.pending_offer(solo.id).lead_id == offered_lead.id


def test_with_the_roulette_off_the_sweep_does_nothing(ctx):
    make_user("admin")
    solo = agent()
    lead = make_lead(department="sales")
    waited(lead, 60)

    assert sweep.sweep() == {"expired": 0, "dispatched": 0, "alerted": 0}
    assert pool.pending_offer(solo.id) is None
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    assert db.session.get(Lead, lead.id, populate_existing=True).state == "queued"
