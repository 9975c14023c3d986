"""The contact list in a real browser: a manager filters the unassigned
contacts (the table swaps in place and the address follows), bulk-assigns
three to an agent, and the agent finds exactly those under Mine."""

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


def seed_contacts(app: Flask, names: list[str], owner_email: str | None = None):
    ids = []
    with app.test_request_context():
        owner = (
            db.session.scalar(db.select(User).where(User.email == owner_email))
            if owner_email
            else None
        )
        for name in names:
            contact = factories.make_contact(
                owner=owner, unassigned=owner is None, name=name
            )
            ids.append(contact.id)
        db.session.remove()
    return ids


def unexpected_console_errors(browser_log) -> list[str]:
    return [m for m in browser_log.console_errors if "status of 422" not in m]


def test_manager_bulk_assigns_and_the_agent_sees_them_in_mine(
    app, page, new_page, seed_user, sign_in, screenshot, browser_log
):
    manager = seed_user("manager", name="Mara Manager", units=["center"])
    agent = seed_user("seller", name="Sam Seller", units=["center"])
    waiting = seed_contacts(app, ["Ana Uno", "Bia Dos", "Cris Tres", "Davi Cuatro"])
    seed_contacts(app, ["Eva Owned"], owner_email=agent.email)

    sign_in(page, manager)
    page.goto("/contacts")
    # The counts arrive after the page, in their own request.
    expect(page.locator('#quick-views [data-view="unassigned"]')).to_have_text("4")
    page.evaluate("window.__marker = 1")

    page.locator("#contact-filters select[name=owner]").select_option("unassigned")
    expect(page).to_have_url(re.compile(r"/contacts\?owner=unassigned$"))
    rows = page.locator("#contact-rows > tr[id^=contact-]:not(#contact-more)")
    expect(rows).to_have_count(4)
    expect(page.locator("#contact-rows")).not_to_contain_text("Eva Owned")

    for name in ("Ana Uno", "Bia Dos", "Cris Tres"):
        page.get_by_role("checkbox", name=f"Select {name}").check()
    page.locator("#bulk-user").select_option(label="Sam Seller")
    page.get_by_role("button", name="Assign selected").click()
    expect(page.locator("#flash")).to_contain_text("3 assigned.")
    for contact_id in waiting[:3]:
        expect(page.locator(f"#owner-{contact_id} .owner-name")).to_have_text(
            "Sam Seller"
        )
    expect(page.locator(f"#owner-{waiting[3]} .owner-name")).to_have_text("Unassigned")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"

    # A saved view keeps the current filters.
    page.get_by_label("Name of this view").fill("Waiting")
    page.get_by_role("button", name="Save this view").click()
    expect(page.locator("#saved-views a", has_text="Waiting")).to_have_attribute(
        "href", "/contacts?owner=unassigned"
    )

    agent_page = new_page()
    sign_in(agent_page, agent)
    agent_page.goto("/contacts")
    agent_page.locator("#quick-views").get_by_role(
        "link", name=re.compile("^Mine")
    ).click()
    expect(agent_page).to_have_url(re.compile(r"/contacts\?owner=me$"))
    names = agent_page.locator("#contact-rows td.name")
    expect(names).to_have_text(
        ["Eva Owned", "Cris Tres", "Bia Dos", "Ana Uno"], use_inner_text=True
    )
    # Screenshots last: Playwright leaves style="" on inputs when it takes
    # one, which htmx then copies across a swap and the CSP rightly blocks.
    screenshot(page, "manager")
    screenshot(agent_page, "agent-mine")
    assert not unexpected_console_errors(browser_log)
    assert not browser_log.csp_violations


def test_search_load_more_and_phone_layout(
    app, page, seed_user, sign_in, screenshot, browser_log
):
    admin = seed_user("admin")
    seed_contacts(app, [f"Lote {n:02d}" for n in range(60)])
    seed_contacts(app, ["João Ñandú"])

    sign_in(page, admin)
    page.goto("/contacts")
    rows = page.locator("#contact-rows > tr[id^=contact-]:not(#contact-more)")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(61)
    expect(page.get_by_role("link", name="Load more")).to_have_count(0)

    page.locator("#contact-filters input[name=q]").fill("joao n")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("João Ñandú")
    expect(page).to_have_url(re.compile(r"/contacts\?q=joao\+n$"))

    page.locator("#contact-filters input[name=q]").fill("")
    page.evaluate(
        "document.querySelector('#contact-filters select[name=sort]')"
        ".insertAdjacentHTML('beforeend', '<option value=sideways>x</option>')"
    )
    page.locator("#contact-filters select[name=sort]").select_option("sideways")
    expect(page.locator("#ferr-sort")).to_have_text("Pick from the list.")
    page.locator("#contact-filters select[name=sort]").select_option("oldest")
    expect(page.locator("#ferr-sort")).to_have_text("")
    expect(rows).to_have_count(50)

    page.set_viewport_size(PHONE)
    expect(rows.first).to_be_visible()
    assert not has_horizontal_scroll(page, PHONE["width"])
    assert not unexpected_console_errors(browser_log)
    screenshot(page, "phone")
    assert not browser_log.csp_violations


def test_restricted_agent_opening_anothers_contact_sees_the_404_page(
    app, page, seed_user, sign_in, screenshot, browser_log
):
    owner = seed_user("attendant", name="Olga Owner")
    snoop = seed_user("attendant", name="Nosy Neighbour")
    (contact_id,) = seed_contacts(app, ["Private Person"], owner_email=owner.email)

    sign_in(page, snoop)
    response = page.goto(f"/contacts/{contact_id}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("404")
    expect(page.get_by_role("alert")).to_contain_text("nothing here")
    expect(page.locator("body")).not_to_contain_text("Private Person")
    expect(page.locator("body")).not_to_contain_text("Olga Owner")
    screenshot(page, "agent-404")
    assert not browser_log.page_errors
