"""The ranking screen and marketing's report by origin: the figures on seeded
data with known answers, the date range's errors, who may see them, and that
no page, fragment or CSV names a contact."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Campaign, ContactStatus, HistoryEntry, Lead
from portal.models.base import utcnow
from tests import factories

SECRET_NAME = "Zelda Secretname"
SECRET_PHONE = "+55 11 98888-7777"
SECRET_EMAIL = "zelda@secret.example"


@pytest.fixture
def seeded(ctx):
    """Two agents; leads from two sources and a campaign; Ana won two, Bruno
    one; Ana accepted 3 leads in 60/120/600 s, Bruno 1 in 30 s."""
    ana = factories.make_user("attendant", name="Ana Agent")
    bruno = factories.make_user("attendant", name="Bruno Agent")
    spring = Campaign(account_id=ana.account_id, key="spring", name="Spring sale")
    db.session.add(spring)
    db.session.commit()
    now = utcnow()
    plan = [
        (ana, "site", spring, 60, True),
        (ana, "site", None, 120, True),
        (ana, "portal", None, 600, False),
        (bruno, "portal", spring, 30, True),
    ]
    for n, (agent, source, campaign, seconds, won) in enumerate(plan):
        contact = factories.make_contact(
            owner=agent,
            name=SECRET_NAME if n == 0 else f"Customer {n}",
            phone=SECRET_PHONE if n == 0 else "",
            email=SECRET_EMAIL if n == 0 else "",
        )
        db.session.add(
            Lead(
                account_id=agent.account_id,
                contact_id=contact.id,
                origin="web",
                source=source,
                campaign_id=campaign.id if campaign else None,
                state="assigned",
                accepted_by_id=agent.id,
                accepted_at=now - timedelta(hours=1),
                speed_to_lead_seconds=seconds,
                created_at=now - timedelta(hours=2),
            )
        )
        if won:
            contact.status = ContactStatus.WON
            db.session.add(
                HistoryEntry(
                    account_id=agent.account_id,
                    contact_id=contact.id,
                    kind="status",
                    author_id=agent.id,
                    data={"from": "in_progress", "to": "won"},
                )
            )
    # A win long ago counts in no recent period.
    old = factories.make_contact(owner=bruno, name="Old Win")
    db.session.add(
        HistoryEntry(
            account_id=bruno.account_id,
            contact_id=old.id,
            kind="status",
            author_id=bruno.id,
            data={"from": "new", "to": "won"},
            created_at=now - timedelta(days=90),
        )
    )
    db.session.commit()
    return ana, bruno


def _no_contact_details(text: str) -> None:
    for secret in (SECRET_NAME, SECRET_PHONE, SECRET_EMAIL, "Customer 1", "Old Win"):
        assert secret not in text


def test_the_ranking_has_the_known_answers(client, auth, seeded):
    ana, bruno = seeded
    auth.login(factories.make_user("ranking"))
    response = client.get("/ranking")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = re.findall(
        r'data-user-id="(\d+)"><td>(\d+)</td><td>.*?</td><td data-won="(\d+)">.*?'
        r"</td><td>(\d+)</td><td>([^<]+)</td>",
        html,
    )
    assert rows == [
        (str(ana.id), "1", "2", "3", "2 min"),
        (str(bruno.id), "2", "1", "1", "30 s"),
    ]
    assert 'hx-trigger="every 30s"' in html  # the screen refreshes itself
    _no_contact_details(html)
    fragment = client.hx_get("/ranking").get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="ranking-board"')
    _no_contact_details(fragment)


def test_the_report_by_source_and_campaign(client, auth, seeded):
    auth.login(factories.make_user("media"))
    html = client.get("/reports/origins?group=source").get_data(as_text=True)
    totals = re.search(r'<table class="table origins-totals">.*?</table>', html, re.S)
    cells = re.findall(
        r"<tr><td><bdi>([^<]*)</bdi></td><td data-leads=\"(\d+)\">", totals.group(0)
    )
    assert cells == [("portal", "2"), ("site", "2")]
    assert "4 leads, 3 won." in html
    _no_contact_details(html)

    data = client.get("/reports/origins.csv?group=campaign&interval=month")
    assert data.status_code == 200 and data.mimetype == "text/csv"
    text = data.get_data(as_text=True)
    _no_contact_details(text)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Period", "Campaign", "Leads", "Won", "Conversion"]
    by_campaign = {row[1]: row[2:] for row in rows[1:]}
    assert by_campaign[""] == ["2", "1", "0.5000"]
    assert by_campaign["Spring sale"] == ["2", "2", "1.0000"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2026-05-10&to=2026-05-01", "to", "The end comes before the start."),
        ("from=2020-01-01&to=2026-01-01", "to", "Choose at most two years."),
        ("from=yesterday", "from", "Enter a date like 2026-12-31."),
        ("group=name", "group", "Pick from the list."),
    ],
)
def test_a_bad_range_or_choice_is_named(client, auth, seeded, query, field, message):
    auth.login(factories.make_user("media"))
    response = client.get(f"/reports/origins?{query}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html and f'id="error-{field}"' in html
    assert client.get(f"/reports/origins.csv?{query}").status_code == 422
    if field != "group":
        auth.login(factories.make_user("ranking"))
        assert client.get(f"/ranking?{query}").status_code == 422


@pytest.mark.parametrize("role", ["attendant", "seller", "reception", "callcenter"])
def test_other_roles_may_not_see_the_reports(client, auth, ctx, role):
    auth.login(factories.make_user(role))
    for url in ("/ranking", "/reports/origins", "/reports/origins.csv"):
        assert client.get(url).status_code == 403


def test_media_and_ranking_homes_link_their_pages(client, auth, ctx):
    auth.login(factories.make_user("media"))
    home = client.get("/").get_data(as_text=True)
    assert 'href="/reports/origins"' in home and 'href="/ranking"' not in home
    auth.login(factories.make_user("ranking"))
    assert 'href="/ranking"' in client.get("/").get_data(as_text=True)
