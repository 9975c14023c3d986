"""The admins' jobs page in a real browser, against the real server and
worker: an import whose uploaded file went missing fails, the admin brings
the file back and presses Resume, and the page follows the job to the end
by itself (no reload)."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

ROWS = 1500


def _csv() -> bytes:
    lines = ["name,phone"] + [f"Person {n},+55 11 9{n:04d}-3333" for n in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def _upload_and_map(page: Page) -> None:
    page.goto("/contacts/import")
    page.locator('input[type="file"]').set_input_files(
        {"name": "walk-ins.csv", "mimeType": "text/csv", "buffer": _csv()}
    )
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_role("button", name=f"Import {ROWS} rows")).to_be_visible()


def test_the_jobs_page_follows_a_resumed_import_to_the_end(
    page, seed_user, sign_in, live_server: LiveServer, screenshot, browser_log
):
    admin = seed_user("admin", name="Ada Admin")
    sign_in(page, admin)
    _upload_and_map(page)

    # The uploaded file goes missing before the job reads it.
    (upload,) = (live_server.instance / "imports").glob("*.csv")
    hidden = live_server.instance / "hidden.csv"
    shutil.move(upload, hidden)
    page.get_by_role("button", name=f"Import {ROWS} rows").click()
    progress = page.locator("#import-progress")
    expect(progress).to_have_attribute("data-status", "failed")
    expect(progress).to_contain_text("The uploaded file is gone. Upload it again.")

    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Jobs", exact=True
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Background jobs")
    row = page.locator("tr[data-job-kind=import]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-job-status", "failed")
    expect(row).to_contain_text("Ada Admin")
    expect(row).to_contain_text(f"0 of {ROWS}")
    expect(page.locator("tr[data-worker]")).to_have_count(1)  # the live worker
    screenshot(page, "1-failed")

    shutil.move(hidden, upload)
    page.evaluate("window.__marker = 1")  # survives only without a reload
    row.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text(
        "The job goes on from where it stopped."
    )
    # The board refreshes itself until the job is done.
    expect(row).to_have_attribute("data-job-status", "done")
    expect(row).to_contain_text(f"{ROWS} of {ROWS}")
    expect(row.locator("progress")).to_have_attribute("value", "100")
    expect(page.locator('[data-count-status="done"]')).to_have_text("1")
    expect(page.locator('[data-count-status="failed"]')).to_have_text("0")
    assert page.evaluate("window.__marker") == 1
    assert re.search(r"/admin/jobs$", page.url)
    screenshot(page, "2-done")

    row.get_by_role("link").click()
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "done")
    expect(page.locator('[data-count="create"]')).to_have_text(str(ROWS))
    assert not browser_log.page_errors
