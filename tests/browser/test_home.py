"""The agent's home in a real browser: a task given to them appears in its
"tasks for today" block by itself (a signal pushed over the websocket makes
the page fetch the block), without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import Team, TeamMember, User
from portal.tasks import service
from tests.browser.conftest import PHONE, has_horizontal_scroll

pytestmark = pytest.mark.browser


def test_a_task_given_to_an_agent_appears_on_their_open_home(
    app, new_page, seed_user, sign_in, run_jobs, screenshot, browser_log
):
    coordinator = seed_user("coordinator", name="Cora Coord", teams=["north"])
    agent = seed_user("attendant", name="Ana Agent", teams=["north"])
    page = new_page(viewport=PHONE)
    sign_in(page, agent)
    page.goto("/")
    tasks = page.locator("#home-tasks")
    expect(tasks).to_contain_text("Nothing due today.")
    expect(page.locator("html")).to_have_attribute("data-socket", "open")
    page.evaluate("window.__marker = 1")

    with app.test_request_context():
        giver = db.session.scalar(select(User).where(User.email == coordinator.email))
        ana = db.session.scalar(select(User).where(User.email == agent.email))
        team = db.session.scalar(select(Team).where(Team.key == "north"))
        db.session.get(TeamMember, (team.id, giver.id)).is_coordinator = True
        db.session.commit()
        service.create_task(
            giver,
            service.TaskForm(
                title="Call Maria back",
                due_at="2020-01-01T09:00",
                assignee=f"user:{ana.id}",
            ),
        )
        db.session.remove()
    run_jobs()  # the "given" job: a notification, then the home's signal

    expect(tasks).to_contain_text("Call Maria back", timeout=5000)
    expect(tasks).to_contain_text("overdue")
    assert page.evaluate("window.__marker") == 1  # no reload
    assert not has_horizontal_scroll(page, PHONE["width"])
    screenshot(page, "home")
    assert not browser_log.page_errors
