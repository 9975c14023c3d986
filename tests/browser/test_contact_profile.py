"""The contact profile and creation in a real browser: htmx swaps the
timeline, status and details in place; the match check runs while typing."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import User
from tests import factories
from tests.browser.conftest import PHONE, has_horizontal_scroll

pytestmark = pytest.mark.browser


def unexpected_console_errors(browser_log) -> list[str]:
    """Console errors besides Chromium's note on each 422 we answer on
    purpose (a form sent back with its errors)."""
    return [
        message
        for message in browser_log.console_errors
        if "status of 422" not in message
    ]


def seed_contact(app: Flask, owner_email: str, **options) -> int:
    with app.test_request_context():
        owner = db.session.scalar(db.select(User).where(User.email == owner_email))
        contact_id = factories.make_contact(owner=owner, **options).id
        db.session.remove()
    return contact_id


def test_owner_adds_a_call_changes_status_and_edits_in_place(
    app, page, seed_user, sign_in, screenshot, browser_log
):
    agent = seed_user("attendant", name="Ana Agent")
    contact_id = seed_contact(app, agent.email, name="Bruno Buyer")
    sign_in(page, agent)
    page.goto(f"/contacts/{contact_id}")
    status = page.locator("#contact-status")
    expect(status.locator(".badge-status")).to_have_text("Assigned")

    page.get_by_label("Kind").select_option("call")
    page.get_by_label("What happened").fill("Called <b>twice</b>")
    page.get_by_role("button", name="Add to timeline").click()
    first = page.locator("#timeline-entries > li").first
    expect(first).to_contain_text("Called <b>twice</b>")
    expect(status.locator(".badge-status")).to_have_text("In progress")
    expect(status).to_contain_text("First response")
    expect(page.get_by_label("What happened")).to_have_value("")

    status.get_by_label("Change status").select_option("lost")
    status.get_by_role("button", name="Save status").click()
    expect(page.locator("#contact-status .field-error")).to_have_text("Say why.")
    page.locator("#contact-status").get_by_label("Reason").fill("Too dear")
    page.locator("#contact-status").get_by_role("button", name="Save status").click()
    expect(page.locator("#contact-status .badge-status")).to_have_text("Lost")
    expect(page.locator("#timeline-entries > li").first).to_contain_text(
        "Reason: Too dear"
    )

    page.locator("#contact-details").get_by_role("link", name="Edit").click()
    page.locator("#contact-details").get_by_label("Name").fill("Bruno Buyer Jr")
    page.locator("#contact-details").get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bruno Buyer Jr")
    expect(page.locator("#timeline-entries > li").first).to_contain_text(
        "Edited the details."
    )
    screenshot(page, "worked")
    assert page.url.endswith(f"/contacts/{contact_id}")  # never reloaded away
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
    assert unexpected_console_errors(browser_log) == []


def test_manager_reassigns_from_the_timeline_header(
    app, page, seed_user, sign_in, browser_log
):
    manager = seed_user("manager", name="Mia Manager", units=["downtown"])
    first = seed_user("seller", name="Sam Seller", units=["downtown"])
    seed_user("seller", name="Tia Seller", units=["downtown"])
    contact_id = seed_contact(app, first.email)
    sign_in(page, manager)
    page.goto(f"/contacts/{contact_id}")
    owner = page.locator("#profile-owner")
    owner.get_by_label("Assign to").select_option(label="Tia Seller")
    owner.get_by_role("button", name="Assign").click()
    expect(owner.locator(".owner-name")).to_have_text("Tia Seller")
    # The timeline refreshes itself after the owner component's request.
    expect(page.locator("#timeline-entries > li").first).to_contain_text(
        "Owner changed from Sam Seller to Tia Seller"
    )
    assert browser_log.page_errors == []
    assert browser_log.console_errors == []


def test_new_contact_shows_matches_while_typing_and_needs_confirmation(
    app, page, seed_user, sign_in, screenshot, browser_log
):
    other = seed_user("attendant", name="Olivia Owner")
    seed_contact(app, other.email, name="Sonia Secret", phone="(11) 98765-4321")
    agent = seed_user("attendant")
    sign_in(page, agent)
    page.goto("/contacts/new")
    page.get_by_label("Name").fill("Paula New")
    page.get_by_label("Phone").press_sequentially("11987654321")
    matches = page.locator("#contact-matches")
    expect(matches).to_contain_text("Olivia Owner")
    expect(matches).not_to_contain_text("Sonia")
    screenshot(page, "match")

    page.get_by_role("button", name="Create contact").click()
    expect(page.locator("#contact-new .form-errors")).to_contain_text(
        "Create a new contact anyway"
    )
    page.get_by_label("Create a new contact anyway").check()
    page.get_by_role("button", name="Create contact").click()
    expect(page).to_have_url(re.compile(r"/contacts/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Paula New")
    expect(page.locator("#flash")).to_contain_text("Paula New was saved.")
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
    assert unexpected_console_errors(browser_log) == []


def test_profile_and_new_contact_fit_a_phone(
    app, new_page, seed_user, sign_in, screenshot
):
    agent = seed_user("attendant")
    long_word = "Unbreakable" * 15
    contact_id = seed_contact(
        app, agent.email, name=long_word, email=f"{'x' * 60}@example.net"
    )
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, agent)
    page.goto(f"/contacts/{contact_id}")
    page.get_by_label("What happened").fill(long_word)
    page.get_by_role("button", name="Add to timeline").click()
    expect(page.locator("#timeline-entries > li").first).to_contain_text(long_word)
    screenshot(page, "phone-profile")
    assert not has_horizontal_scroll(page, PHONE["width"])
    page.goto("/contacts/new")
    screenshot(page, "phone-new")
    assert not has_horizontal_scroll(page, PHONE["width"])
