"""Smoke tests in a real browser: sign-in, the CSP, languages, small screens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, has_horizontal_scroll, submit_login

pytestmark = pytest.mark.browser

TRANSLATIONS = Path(__file__).resolve().parents[2] / "portal" / "translations"


def test_admin_signs_in_through_the_form_and_lands_home(
    page, seed_user, sign_in, live_server, screenshot, browser_log
):
    admin = seed_user("admin", name="Ada Admin")

    response = page.goto("/login")
    assert response is not None and response.status == 200
    screenshot(page, "login")
    sign_in(page, admin)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Ada Admin")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Users", exact=True)).to_be_visible()
    screenshot(page, "home")
    assert browser_log.console_errors == []
    assert browser_log.page_errors == []


def test_pages_run_under_the_csp_with_htmx_4(page, seed_user, sign_in, browser_log):
    admin = seed_user("admin")

    response = page.goto("/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    sign_in(page, admin)
    page.goto("/admin/users")

    # Our own script and stylesheet loaded from 'self' and htmx is the 4.x one.
    version = page.evaluate("window.htmx && window.htmx.version")
    assert isinstance(version, str) and version.startswith("4"), version
    rules = page.evaluate(
        "Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0)"
    )
    assert rules > 0, "portal.css did not load"
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
    assert browser_log.console_errors == []


def test_wrong_password_shows_the_error_and_keeps_the_email(
    page, seed_user, screenshot, browser_log
):
    admin = seed_user("admin")

    page.goto("/login")
    submit_login(page, admin.email, "not the password at all")

    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Email", exact=True)).to_have_value(admin.email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    screenshot(page, "error")
    assert browser_log.page_errors == []


def _translation(locale: str, message: str) -> str | None:
    po = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return None
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    entry = catalog.get(message)
    return entry.string if entry is not None and entry.string else None


def test_login_page_follows_the_browsers_language(new_page, screenshot):
    page = new_page(locale="pt-BR")

    page.goto("/login")

    expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    screenshot(page, "pt-BR")
    translated = _translation("pt_BR", "Sign in")
    if translated is None:
        pytest.skip("portal/translations has no pt_BR catalog translating 'Sign in'")
    assert translated != "Sign in"
    expect(page.get_by_role("heading", level=1)).to_have_text(translated)
    expect(page.get_by_role("button", name=translated, exact=True)).to_be_visible()


def test_login_and_home_fit_a_360px_phone(new_page, seed_user, sign_in, screenshot):
    agent = seed_user("seller")
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)

    page.goto("/login")
    screenshot(page, "login-360")
    assert not has_horizontal_scroll(page, PHONE["width"])

    sign_in(page, agent)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {agent.name}")
    screenshot(page, "home-360")
    assert not has_horizontal_scroll(page, PHONE["width"])
