"""The roulette from the agent's chair, in a real browser against the real
server and worker: the switch, the offer pop-up pushed over the websocket,
its countdown, Accept, the expiry and the hidden-tab alert."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import update

from portal.extensions import db
from portal.models import Account, Contact, Lead, Offer, User
from portal.models.base import utcnow
from portal.roulette import sweep
from tests import factories
from tests.browser.conftest import PHONE, LiveServer, Person, has_horizontal_scroll

pytestmark = pytest.mark.browser


def enable_roulette(app: Flask, timeout: int = 60, rounds: int = 1) -> None:
    """On, with one round: a lead everyone declined waits in the queue
    instead of coming straight back to the same agents."""
    with app.test_request_context():
        factories.enable_roulette(timeout=timeout, rounds=rounds)
        db.session.remove()


@pytest.fixture(autouse=True)
def _settle(app: Flask) -> Iterator[None]:
    """After each test (its pages are closed by then): roulette off and a
    short pause, so that the worker's sweep and any socket handshake still
    in flight are done before the next test's TRUNCATE. On PostgreSQL a live
    transaction reading several tables in another order than the TRUNCATE
    locks them deadlocks with it."""
    yield
    with app.app_context():
        db.session.execute(update(Account).values(roulette_enabled=False))
        db.session.commit()
        db.session.remove()
    time.sleep(0.5)


@pytest.fixture
def api_key(app: Flask) -> str:
    """A live intake key of the account (the website form's)."""
    with app.test_request_context():
        secret = factories.make_api_key()
        db.session.remove()
    return secret


def post_lead(
    live_server: LiveServer,
    api_key: str,
    name: str,
    department: str = "sales",
    source: str = "website",
    message: str = "",
) -> tuple[int, int]:
    """A lead through the intake API of the live server, as a website form
    sends it; the server routes it and pushes the offer. Returns (lead id,
    contact id)."""
    body = {
        "name": name,
        "email": f"{name.split()[0].lower()}@example.net",
        "department": department,
        "source": source,
    }
    if message:
        body["message"] = message
    parts = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/api/v1/leads",
            body=json.dumps(body),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
            },
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 201, (response.status, answer)
    assert answer["created"] is True
    return answer["id"], answer["contact_id"]


def read(app: Flask, model, id_: int):
    with app.test_request_context():
        row = db.session.get(model, id_)
        db.session.expunge(row)
        db.session.remove()
    return row


def user_id(app: Flask, person: Person) -> int:
    with app.test_request_context():
        found = db.session.scalar(db.select(User.id).where(User.email == person.email))
        db.session.remove()
    return found


def wait_until(predicate, timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        time.sleep(0.1)


def go_available(page: Page) -> None:
    """Press the switch once the live connection stands; wait for 'Available'."""
    expect(page.locator("html")).to_have_attribute("data-socket", "open")
    switch = page.locator("#presence").get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_have_accessible_name("Unavailable")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.locator("#presence")).to_have_attribute("data-online", "true")
    expect(switch).to_have_accessible_name("Available")


def countdown(page: Page) -> int:
    return int(page.locator("#offer-tray [data-countdown]").inner_text())


def test_offer_pops_up_live_counts_down_and_accept_opens_the_contact(
    app, new_page, seed_user, sign_in, live_server, api_key, screenshot, browser_log
):
    enable_roulette(app, timeout=60)
    ana = seed_user("attendant", name="Ana Agent", departments=["sales"])
    bob = seed_user("attendant", name="Bob Busy", departments=["sales"])
    page = new_page()
    other = new_page()

    sign_in(page, ana)
    go_available(page)
    # Bob switches on after Ana: she has waited longer, the lead is hers.
    sign_in(other, bob)
    go_available(other)
    screenshot(page, "available")
    page.evaluate("window.__stayed = 1")
    other.evaluate("window.__stayed = 1")

    lead_id, contact_id = post_lead(
        live_server,
        api_key,
        "Bruna Buyer",
        source="website",
        message="Wants the 2-bedroom flat",
    )

    popup = page.locator("#offer-tray .offer")
    expect(popup).to_be_visible()
    expect(popup).to_have_attribute("role", "alertdialog")
    expect(popup).to_have_attribute("data-state", "pending")
    expect(popup).to_have_attribute("data-lead-id", str(lead_id))
    expect(popup.get_by_role("heading")).to_have_text("New lead: Bruna Buyer")
    expect(popup).to_contain_text("website")
    expect(popup).to_contain_text("sales")  # the department, named by its key
    expect(popup).to_contain_text("Wants the 2-bedroom flat")
    # Nobody was typing: the pop-up takes the focus, on Accept.
    expect(popup.get_by_role("button", name="Accept")).to_be_focused()
    first = countdown(page)
    assert 50 <= first <= 60, first
    expect(page.locator("#offer-tray [data-countdown]")).not_to_have_text(str(first))
    assert countdown(page) < first
    assert page.evaluate("window.__stayed") == 1  # no reload brought it

    # The socket told the server the offer was on screen.
    offer_id = int(popup.get_attribute("data-offer-id"))
    wait_until(
        lambda: read(app, Offer, offer_id).seen_at is not None,
        message="the offer was never marked seen",
    )
    # Bob, eligible but not chosen, sees nothing and was not reloaded either.
    expect(other.locator("#offer-tray .offer")).to_have_count(0)
    assert other.evaluate("window.__stayed") == 1
    screenshot(page, "offer")

    popup.get_by_role("button", name="Accept").click()
    expect(page).to_have_url(re.compile(rf"/contacts/{contact_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Bruna Buyer")
    assert read(app, Contact, contact_id).owner_id == user_id(app, ana)
    lead = read(app, Lead, lead_id)
    assert lead.state == "assigned" and lead.accepted_by_id == user_id(app, ana)
    assert read(app, Offer, offer_id).state == "accepted"
    expect(other.locator("#offer-tray .offer")).to_have_count(0)
    screenshot(page, "contact")
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
    assert browser_log.console_errors == []


def test_unanswered_offer_runs_out_and_goes_to_the_next_agent(
    app, new_page, seed_user, sign_in, live_server, api_key, screenshot, browser_log
):
    enable_roulette(app, timeout=10)  # the shortest timeout an account may set
    ana = seed_user("attendant", name="Ana Away", departments=["sales"])
    bob = seed_user("attendant", name="Bob Next", departments=["sales"])
    page = new_page()
    other = new_page()
    sign_in(page, ana)
    go_available(page)
    sign_in(other, bob)
    go_available(other)
    # Ana is typing a note somewhere: the pop-up must not take her caret.
    page.goto("/contacts/new")
    expect(page.locator("html")).to_have_attribute("data-socket", "open")
    name_field = page.get_by_label("Name", exact=True)
    name_field.click()

    post_lead(live_server, api_key, "Carla Client")
    popup = page.locator("#offer-tray .offer")
    expect(popup).to_have_attribute("data-state", "pending")
    expect(name_field).to_be_focused()
    page.keyboard.type("still typing")
    expect(name_field).to_have_value("still typing")

    # Zero on the clock: the pop-up says so, then the server's expiry lands
    # and the pop-up goes away; the lead pops up for Bob.
    expect(popup.locator(".offer-timeout")).to_be_visible(timeout=15_000)
    expect(popup.get_by_role("button", name="Accept")).to_be_disabled()
    screenshot(page, "ran-out")
    expect(popup).to_have_attribute("data-state", "expired", timeout=10_000)
    expect(page.locator("#offer-tray .offer")).to_have_count(0, timeout=10_000)
    nexts = other.locator("#offer-tray .offer")
    expect(nexts).to_have_attribute("data-state", "pending")
    expect(nexts.get_by_role("heading")).to_have_text("New lead: Carla Client")

    # Bob declines: nobody is left, so the lead waits in the queue and no
    # pop-up comes back to either of them.
    nexts.get_by_role("button", name="Decline").click()
    expect(nexts).to_have_attribute("data-state", "declined")
    expect(other.locator("#offer-tray .offer")).to_have_count(0, timeout=10_000)
    expect(page.locator("#offer-tray .offer")).to_have_count(0)
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []


def test_a_late_copy_of_an_ended_offer_does_not_pop_up_again(
    app, new_page, seed_user, sign_in, live_server, api_key, browser_log
):
    # A reconnect re-sends the pending offer as read from the database; when
    # the offer ends right after that read, its end can reach the page
    # first. The late pending copy must not bring the pop-up back.
    from portal.realtime.hub import publish
    from portal.roulette import push

    enable_roulette(app, timeout=60)
    ana = seed_user("attendant", name="Ana Agent", departments=["sales"])
    page = new_page()
    sign_in(page, ana)
    go_available(page)
    post_lead(live_server, api_key, "Bruna Buyer")
    popup = page.locator("#offer-tray .offer")
    expect(popup).to_have_attribute("data-state", "pending")
    offer_id = int(popup.get_attribute("data-offer-id"))
    with app.test_request_context():
        stale = push.offer_html(offer_id)
        db.session.remove()

    popup.get_by_role("button", name="Decline").click()
    expect(popup).to_have_attribute("data-state", "declined")
    probe = (
        '<div id="notification-tray" hx-swap-oob="afterbegin">'
        '<a class="notification" data-notification-id="probe" href="#">probe</a></div>'
    )
    with app.app_context():
        publish(user_id(app, ana), stale)
        # Pushed after the copy on the same socket: once it shows, the copy
        # was handled.
        publish(user_id(app, ana), probe)
    expect(page.locator('[data-notification-id="probe"]')).to_be_visible()
    expect(page.locator('#offer-tray .offer[data-state="pending"]')).to_have_count(0)
    # And the next lead pops up as usual.
    post_lead(live_server, api_key, "Caio Cliente")
    expect(popup).to_have_attribute("data-state", "pending")
    expect(popup.get_by_role("heading")).to_have_text("New lead: Caio Cliente")
    assert browser_log.page_errors == []


def test_hidden_tab_gets_a_notification_and_a_sound(
    app, new_page, seed_user, sign_in, live_server, api_key, browser_log
):
    enable_roulette(app, timeout=60)
    ana = seed_user("attendant", name="Ana Elsewhere", departments=["sales"])
    page = new_page()
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    # Spies around the real browser APIs, and a tab we can hide: headless
    # Chromium never hides a page by itself.
    page.add_init_script(
        """
        window.__notified = [];
        window.__tones = 0;
        const RealNotification = window.Notification;
        window.Notification = class extends RealNotification {
          constructor(title, options) {
            super(title, options);
            window.__notified.push({title, body: options && options.body});
          }
        };
        const createOscillator = AudioContext.prototype.createOscillator;
        AudioContext.prototype.createOscillator = function () {
          window.__tones += 1;
          return createOscillator.call(this);
        };
        window.__hidden = false;
        Object.defineProperty(document, "hidden", {get: () => window.__hidden});
        Object.defineProperty(document, "visibilityState", {
          get: () => (window.__hidden ? "hidden" : "visible"),
        });
        """
    )
    sign_in(page, ana)
    go_available(page)
    page.evaluate(
        "window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))"
    )

    post_lead(live_server, api_key, "Dora Distant", message="Call after 6pm")
    popup = page.locator("#offer-tray .offer")
    expect(popup).to_have_attribute("data-state", "pending")
    page.wait_for_function("window.__notified.length === 1")
    notified = page.evaluate("window.__notified[0]")
    assert notified["title"] == "New lead: Dora Distant"
    assert "Call after 6pm" in notified["body"]
    assert page.evaluate("window.__tones") >= 1
    # Not seen while hidden; seen as soon as the agent comes back.
    offer_id = int(popup.get_attribute("data-offer-id"))
    time.sleep(0.5)
    assert read(app, Offer, offer_id).seen_at is None
    page.evaluate(
        "window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))"
    )
    wait_until(
        lambda: read(app, Offer, offer_id).seen_at is not None,
        message="the offer was not marked seen when the tab came back",
    )
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []


def test_offer_on_a_360px_phone_is_a_bottom_sheet_without_sideways_scroll(
    app, new_page, seed_user, sign_in, live_server, api_key, screenshot, browser_log
):
    enable_roulette(app, timeout=60)
    ana = seed_user("attendant", name="Ana Mobile", departments=["sales"])
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, ana)
    go_available(page)
    assert not has_horizontal_scroll(page, PHONE["width"])

    post_lead(
        live_server,
        api_key,
        "Eduardo Extraordinariamente-Comprido da Silva Sauro",
        message="A very long message " * 30,
    )
    popup = page.locator("#offer-tray .offer")
    expect(popup).to_be_visible()
    popup.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
    screenshot(page, "offer-360")
    assert not has_horizontal_scroll(page, PHONE["width"])
    box = popup.bounding_box()
    assert box is not None
    assert box["x"] == 0 and abs(box["width"] - PHONE["width"]) < 1
    assert abs(box["y"] + box["height"] - PHONE["height"]) < 1  # on the bottom
    for name in ("Accept", "Decline"):
        button = popup.get_by_role("button", name=name).bounding_box()
        assert button["height"] >= 44 and button["width"] >= 120, (name, button)

    popup.get_by_role("button", name="Decline").tap()
    expect(popup).to_have_attribute("data-state", "declined")
    expect(page.locator("#offer-tray .offer")).to_have_count(0, timeout=10_000)
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []


def test_manager_gets_a_pushed_alert_for_a_lead_nobody_took(
    app, page, seed_user, sign_in, live_server, api_key, screenshot, browser_log
):
    enable_roulette(app, timeout=60)
    manager = seed_user("manager", name="Mara Manager", departments=["sales"])
    sign_in(page, manager)
    expect(page.locator("html")).to_have_attribute("data-socket", "open")
    expect(page.locator("#presence")).to_have_count(0)  # she takes no leads
    page.evaluate("window.__stayed = 1")

    # Nobody is available: the lead waits. The alert is the sweep's, run
    # here as if its threshold had passed.
    lead_id, contact_id = post_lead(live_server, api_key, "Wanda Waiting")
    assert read(app, Lead, lead_id).state == "queued"
    with app.test_request_context():
        from portal.settings.service import current_account

        account = current_account()
        later = utcnow() + timedelta(minutes=account.roulette_queue_alert_minutes + 1)
        assert sweep.alert_long_waits(account, now=later) == 1
        db.session.remove()

    alert = page.locator("#notification-tray [data-notification-id]")
    expect(alert).to_contain_text("Wanda Waiting has waited more than")
    expect(alert).to_have_attribute("href", f"/contacts/{contact_id}")
    assert page.evaluate("window.__stayed") == 1
    screenshot(page, "alert")
    page.locator("#notification-tray").get_by_role("button", name="Dismiss").click()
    expect(alert).to_have_count(0)
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
    assert browser_log.console_errors == []
