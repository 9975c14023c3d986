"""The managers' queue filter on GET /contacts: `lead=waiting` lists the
contacts with a lead waiting in the roulette's queue, within the viewer's
scope, by keyset pages, with how long each has waited."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text, update

from portal.contacts import list_filters, pages
from portal.extensions import db
from portal.models import Lead
from portal.settings.service import current_account
from tests import factories

ROW_ID = re.compile(r'<tr id="contact-(\d+)"')
MORE_LINK = re.compile(r'<tr id="contact-more".*?href="([^"]+)"', re.S)


def row_ids(body: str) -> list[int]:
    return [int(found) for found in ROW_ID.findall(body)]


def more_url(body: str) -> str | None:
    found = MORE_LINK.search(body)
    return html.unescape(found.group(1)) if found else None


def set_state(lead: Lead, state: str) -> None:
    db.session.execute(update(Lead).where(Lead.id == lead.id).values(state=state))
    db.session.commit()


@pytest.fixture
def world(ctx):
    """Waiting leads on contacts in and out of each viewer's scope, and
    leads that do not wait (offered, assigned)."""
    w = SimpleNamespace()
    w.admin = factories.make_user("admin")
    w.coordinator = factories.make_user("coordinator", teams=["t1"])
    w.manager = factories.make_user("manager", units=["u1"])
    w.a1 = factories.make_user("attendant", teams=["t1"])
    w.a2 = factories.make_user("attendant", teams=["t2"])
    # Waiting: one of a1's contacts, one of a2's, one unassigned.
    w.mine_waiting = factories.make_contact(w.a1, name="Ana Waiting")
    w.other_waiting = factories.make_contact(w.a2, name="Bruno Hidden")
    w.free_waiting = factories.make_contact(unassigned=True, name="Caio Queue")
    for contact in (w.mine_waiting, w.other_waiting, w.free_waiting):
        factories.make_lead(contact)
    # Not waiting: no lead, an offered lead, an assigned lead.
    w.free_quiet = factories.make_contact(unassigned=True, name="Dora Quiet")
    w.free_offered = factories.make_contact(unassigned=True, name="Edu Offered")
    set_state(factories.make_lead(w.free_offered), "offered")
    w.mine_taken = factories.make_contact(w.a1, name="Fabi Taken")
    set_state(factories.make_lead(w.mine_taken), "assigned")
    return w


def waiting_ids(client, **args) -> list[int]:
    response = client.hx_get("/contacts", query_string={"lead": "waiting", **args})
    assert response.status_code == 200
    return row_ids(response.get_data(as_text=True))


def test_an_admin_sees_exactly_the_contacts_with_queued_leads(client, auth, world):
    auth.login(world.admin)
    expected = {world.mine_waiting.id, world.other_waiting.id, world.free_waiting.id}
    assert set(waiting_ids(client)) == expected
    page = client.get("/contacts?lead=waiting").get_data(as_text=True)
    assert set(row_ids(page)) == expected
    # A second queued lead of the same contact lists it once.
    factories.make_lead(world.free_waiting)
    assert sorted(waiting_ids(client)) == sorted(expected)


def test_a_coordinator_sees_the_queue_within_their_scope(client, auth, world):
    auth.login(world.coordinator)
    # Their team's contact and the unassigned one; never another team's.
    assert set(waiting_ids(client)) == {world.mine_waiting.id, world.free_waiting.id}
    searched = waiting_ids(client, q="Bruno")
    assert searched == []
    by_owner = waiting_ids(client, owner=str(world.a2.id))
    assert world.other_waiting.id not in by_owner


def test_a_manager_of_units_sees_only_unassigned_waiting_contacts(client, auth, world):
    auth.login(world.manager)
    assert waiting_ids(client) == [world.free_waiting.id]


def test_the_filter_combines_with_the_others(client, auth, world):
    auth.login(world.admin)
    assert waiting_ids(client, owner="unassigned") == [world.free_waiting.id]
    assert waiting_ids(client, owner=str(world.a1.id)) == [world.mine_waiting.id]
    assert waiting_ids(client, q="Ana") == [world.mine_waiting.id]
    assert waiting_ids(client, status="won") == []


def test_a_restricted_agent_gets_no_queue_even_with_the_parameter(client, auth, world):
    auth.login(world.a1)
    plain = row_ids(client.hx_get("/contacts").get_data(as_text=True))
    with_param = waiting_ids(client)
    # Ignored: the same list as without it, which never holds a2's contact.
    assert with_param == plain
    assert world.other_waiting.id not in with_param
    assert world.mine_taken.id in with_param  # not narrowed to the queue
    # Not even a bad value is looked at.
    assert client.hx_get("/contacts?lead=bogus").status_code == 200
    # The service ignores it too for such a viewer.
    filters = list_filters.parse_filters(
        current_account(), {"lead": "waiting"}, world.a1
    )
    assert filters.lead == ""
    # ... and a parameter slipped past the parse changes nothing either.
    forced = list_filters.ContactFilters(lead="waiting")
    assert {c.id for c in pages.list_contacts(world.a1, forced).contacts} == set(plain)


def test_only_assigners_are_offered_the_filter_and_the_quick_view(client, auth, world):
    auth.login(world.coordinator)
    page = client.get("/contacts").get_data(as_text=True)
    assert 'name="lead" value="waiting"' in page
    assert 'href="/contacts?lead=waiting"' in page
    checked = client.get("/contacts?lead=waiting").get_data(as_text=True)
    assert 'name="lead" value="waiting" checked' in checked
    counts = client.hx_get("/contacts/counts?current=waiting").get_data(as_text=True)
    assert re.search(r'data-view="waiting">2<', counts)
    assert 'aria-current="page">Waiting in the queue' in counts
    auth.logout()
    auth.login(world.a1)
    page = client.get("/contacts").get_data(as_text=True)
    assert 'name="lead"' not in page
    assert "lead=waiting" not in page
    counts = client.hx_get("/contacts/counts").get_data(as_text=True)
    assert 'data-view="waiting"' not in counts


def test_a_bad_value_is_named_next_to_the_filter(client, auth, world):
    auth.login(world.admin)
    response = client.hx_get("/contacts?lead=forever")
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    slot = body[body.index('<span id="ferr-lead"') :]
    assert "Pick from the list." in slot[: slot.index("</span>")]


def test_each_row_says_how_long_its_lead_has_waited(client, auth, world):
    lead = db.session.scalar(
        select(Lead).where(Lead.contact_id == world.free_waiting.id)
    )
    twelve_minutes_ago = datetime.now(UTC) - timedelta(minutes=12, seconds=5)
    db.session.execute(
        update(Lead).where(Lead.id == lead.id).values(created_at=twelve_minutes_ago)
    )
    db.session.commit()
    auth.login(world.admin)
    body = client.hx_get("/contacts?lead=waiting").get_data(as_text=True)
    row = body[body.index(f'<tr id="contact-{world.free_waiting.id}"') :]
    row = row[: row.index("</tr>")]
    assert "waiting 12 minutes" in row
    assert f'datetime="{twelve_minutes_ago.isoformat()}"' in row
    # The ordinary list does not carry the badge.
    plain = client.hx_get("/contacts").get_data(as_text=True)
    assert "waiting 12 minutes" not in plain


def test_the_queue_is_paged_by_cursor(client, auth, world):
    extra = [
        factories.make_contact(unassigned=True, name=f"Queue {n}") for n in range(5)
    ]
    for contact in extra:
        factories.make_lead(contact)
    expected = sorted(
        [world.mine_waiting.id, world.other_waiting.id, world.free_waiting.id]
        + [c.id for c in extra],
        reverse=True,
    )
    auth.login(world.admin)
    seen: list[int] = []
    body = client.get("/contacts?lead=waiting&limit=3").get_data(as_text=True)
    seen += row_ids(body)
    url = more_url(body)
    pages = 1
    while url:
        assert "lead=waiting" in url and "cursor=" in url
        response = client.hx_get(url, headers={"HX-Target": "tr#contact-more"})
        assert response.status_code == 200
        fragment = response.get_data(as_text=True)
        assert "<html" not in fragment
        seen += row_ids(fragment)
        url = more_url(fragment)
        pages += 1
    assert seen == expected  # newest first, each once
    assert pages == 3
    # Oldest first pages the other way.
    ascending = client.get("/contacts?lead=waiting&limit=4&sort=oldest")
    assert row_ids(ascending.get_data(as_text=True)) == sorted(expected)[:4]


def test_a_lead_taken_off_the_queue_leaves_the_list(client, auth, world):
    auth.login(world.admin)
    lead = db.session.scalar(
        select(Lead).where(Lead.contact_id == world.free_waiting.id)
    )
    set_state(lead, "offered")
    assert world.free_waiting.id not in waiting_ids(client)


def test_the_export_honours_the_filter(client, auth, world):
    auth.login(world.admin)
    response = client.get("/contacts/export.csv?lead=waiting")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    names = {row[1] for row in rows[1:]} if rows else set()
    assert "Ana Waiting" in response.get_data(as_text=True)
    assert "Dora Quiet" not in response.get_data(as_text=True)
    assert "Fabi Taken" not in response.get_data(as_text=True)
    assert len(rows) - 1 == 3, names


def test_the_queue_query_reads_the_lead_state_index(ctx):
    """The queued leads come from ix_lead_state, not a scan of all leads."""
    admin = factories.make_user("admin")
    factories.make_lead(factories.make_contact(unassigned=True))
    filters = list_filters.ContactFilters(lead="waiting")
    query = pages.page_plan(admin, filters, None, 50).selects[0]
    dialect = db.engine.dialect.name
    compiled = query.compile(
        dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    if dialect == "postgresql":
        # Tiny test tables make a scan cheapest; ask whether the index
        # serves when scans are priced out, as on a real table.
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            db.session.scalars(text(f"EXPLAIN {compiled}"))  # noqa: S608
        )
    else:
        plan = "\n".join(
            str(row[-1])
            for row in db.session.execute(
                text(f"EXPLAIN QUERY PLAN {compiled}")  # noqa: S608
            )
        )
    assert "ix_lead_state" in plan, plan
