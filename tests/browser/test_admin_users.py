"""The key administration flow in a real browser, against the real server and
worker: an admin creates a user with the htmx form, the activation mail goes
out, and the new user activates the account and signs in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Person, has_horizontal_scroll

pytestmark = pytest.mark.browser

ACTIVATION_LINK = re.compile(r"https?://\S+/activate/\S+")


def labelled(text: str) -> re.Pattern:
    """A label starting with `text`: a wrapping label's accessible text also
    holds the select's chosen option or the field's error message."""
    return re.compile(rf"^{re.escape(text)}\b")


def open_users_page(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Users", exact=True
    ).click()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")


def create_form(page: Page):
    return page.locator(
        "form", has=page.get_by_role("button", name="Create user", exact=True)
    )


def test_admin_creates_a_user_who_activates_and_signs_in(
    page, new_page, seed_user, sign_in, live_server, screenshot, browser_log
):
    admin = seed_user("admin", name="Ada Admin")
    newcomer = Person(
        email="nina.nova@example.com",
        name="Nina Nova",
        password="a long enough password",
    )

    sign_in(page, admin)
    open_users_page(page)
    screenshot(page, "1-users")

    page.get_by_text("New user", exact=True).click()
    form = create_form(page)
    form.get_by_label(labelled("Email")).fill(newcomer.email.upper())
    form.get_by_label(labelled("Name")).fill(newcomer.name)
    form.get_by_label(labelled("Role")).select_option(label="Seller")
    # Survives only if the page is not reloaded.
    page.evaluate("window.__marker = 1")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/admin/users")
    ) as posted:
        form.get_by_role("button", name="Create user", exact=True).click()

    assert posted.value.request.headers.get("hx-request") == "true"
    assert posted.value.ok, posted.value.status
    row = page.get_by_role("row").filter(has_text=newcomer.email)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(newcomer.name)
    expect(row).to_contain_text("Seller")
    expect(row).to_contain_text("Pending activation")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    screenshot(page, "2-created")

    # The same page on a phone: the table turns into cards, nothing overflows.
    page.set_viewport_size(PHONE)
    expect(row).to_be_visible()
    screenshot(page, "3-users-360")
    assert not has_horizontal_scroll(page, PHONE["width"])

    mail = live_server.wait_for_mail(newcomer.email)
    link = ACTIVATION_LINK.search(mail.get_content())
    assert link, mail.get_content()
    assert link.group(0).startswith(f"{live_server.url}/activate/")

    # The newcomer, in a browser of their own.
    own = new_page()
    own.goto(link.group(0))
    expect(own.get_by_role("heading", level=1)).to_have_text("Set your password")
    own.get_by_label("New password", exact=True).fill(newcomer.password)
    own.get_by_label("Repeat the password", exact=True).fill(newcomer.password)
    screenshot(own, "4-activate")
    own.get_by_role("button", name="Save password", exact=True).click()
    expect(own).to_have_url(re.compile(r"/login$"))
    expect(own.get_by_role("status")).to_have_text(
        "Your password is set. Sign in to start."
    )

    sign_in(own, newcomer)
    expect(own.get_by_role("heading", level=1)).to_have_text(f"Hello, {newcomer.name}")
    screenshot(own, "5-signed-in")

    assert browser_log.console_errors == []

    # The link worked once (answering 410 Gone, which the console reports).
    own.goto(link.group(0))
    expect(own.get_by_role("alert")).to_contain_text("already used")


def test_create_form_shows_errors_beside_the_fields_without_reload(
    page, seed_user, sign_in, screenshot
):
    admin = seed_user("admin")
    taken = seed_user("seller", email="taken@example.com")

    sign_in(page, admin)
    open_users_page(page)
    page.get_by_text("New user", exact=True).click()
    form = create_form(page)
    form.get_by_label(labelled("Email")).fill(taken.email.upper())
    form.get_by_label(labelled("Name")).fill("Someone Else")
    form.get_by_label(labelled("Role")).select_option(label="Seller")
    page.evaluate("window.__marker = 1")
    form.get_by_role("button", name="Create user", exact=True).click()

    email = create_form(page).get_by_label(labelled("Email"))
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(
        create_form(page).get_by_role("alert").filter(has_text="already")
    ).to_have_count(1)
    expect(page.get_by_role("row").filter(has_text="Someone Else")).to_have_count(0)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    screenshot(page, "error")


def test_users_page_fits_a_360px_phone(new_page, seed_user, sign_in, screenshot):
    admin = seed_user("admin")
    seed_user(
        "seller",
        name="Maria Fernanda Albuquerque de Souza",
        email="maria.fernanda.albuquerque@empresa-exemplo.com.br",
        units=["centro"],
        departments=["financeiro"],
    )
    seed_user("attendant", teams=["online"], password=None)
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)

    sign_in(page, admin)
    open_users_page(page)
    expect(page.get_by_role("row").filter(has_text="Albuquerque")).to_be_visible()
    screenshot(page, "list")
    assert not has_horizontal_scroll(page, PHONE["width"])

    page.get_by_text("New user", exact=True).click()
    expect(create_form(page).get_by_label(labelled("Email"))).to_be_visible()
    screenshot(page, "form")
    assert not has_horizontal_scroll(page, PHONE["width"])
