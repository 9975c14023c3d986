"""A manager mentions an agent in a comment; the agent's open tab shows the
unread badge go up within 2 s (real web server, real RQ worker, real
websocket), with the count in the tab's title and the pop-up escaped."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import User
from tests import factories

pytestmark = pytest.mark.browser

SCRIPT = "<script>alert(1)</script>"


def seed_contact(app: Flask, owner_email: str, **options) -> int:
    with app.test_request_context():
        owner = db.session.scalar(db.select(User).where(User.email == owner_email))
        contact_id = factories.make_contact(owner=owner, **options).id
        db.session.remove()
    return contact_id


def test_a_mention_reaches_the_agents_open_tab_within_two_seconds(
    app, new_page, seed_user, sign_in, screenshot, browser_log
):
    manager = seed_user("manager", name="Mia Manager", units=["u1"])
    agent = seed_user("seller", name="Sam Seller", units=["u1"])
    seed_user("seller", name="Sol Seller", units=["u2"])
    contact_id = seed_contact(app, agent.email, name="Bruno Buyer")

    agent_page = new_page()
    sign_in(agent_page, agent)
    # Once its socket connects, the top bar reads the badge again (pushes
    # sent while a socket is down are lost).
    with agent_page.expect_response(re.compile(r"/notifications/badge$")) as asked:
        agent_page.goto("/")
    assert asked.value.status == 200
    expect(agent_page.locator("html")).to_have_attribute("data-socket", "open")
    badge = agent_page.locator("#unread-count")
    expect(badge).to_have_attribute("data-unread", "0")
    expect(agent_page).to_have_title("Home · Roleta")

    page = new_page()
    sign_in(page, manager)
    page.goto(f"/contacts/{contact_id}")
    search = page.get_by_label("Find a person who can see this contact")
    search.fill("sel")
    options = page.locator("#mention-options")
    expect(options).to_contain_text("Sam Seller")
    expect(options).not_to_contain_text("Sol Seller")  # in another unit
    options.get_by_label("Sam Seller").check()
    page.get_by_label("Comment for the team").fill(f"Call him {SCRIPT}\nhttps://x.test")
    page.get_by_role("button", name="Comment", exact=True).click()
    sent = time.monotonic()
    entry = page.locator("#timeline-entries > li").first
    expect(entry).to_contain_text(f"Call him {SCRIPT}")
    expect(entry.get_by_role("link", name="https://x.test")).to_be_visible()
    expect(entry).to_contain_text("@Sam Seller")
    expect(page.get_by_label("Comment for the team")).to_have_value("")

    expect(badge).to_have_attribute("data-unread", "1", timeout=2_000)
    seen = time.monotonic() - sent
    print(f"mention -> badge in the agent's tab: {seen * 1000:.0f} ms")
    expect(agent_page).to_have_title("(1) Home · Roleta")
    toast = agent_page.locator("#notification-tray [data-notification-id]").first
    expect(toast).to_contain_text("Mia Manager mentioned you on Bruno Buyer")
    expect(toast).to_contain_text(SCRIPT)  # as text, never as a script
    screenshot(agent_page, "badge")

    # Reading it from the list brings the badge (and the title) back down.
    agent_page.locator("#unread-count").click()
    expect(agent_page).to_have_url(re.compile(r"/notifications$"))
    row = agent_page.locator("#notification-list > li").first
    expect(row.get_by_role("link")).to_have_attribute(
        "href", re.compile(rf"/contacts/{contact_id}#entry-\d+$")
    )
    row.get_by_role("button", name="Mark read").click()
    expect(agent_page.locator("#unread-count")).to_have_attribute("data-unread", "0")
    expect(agent_page).to_have_title("Notifications · Roleta")
    assert not browser_log.page_errors
