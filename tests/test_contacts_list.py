"""The contact list (GET /contacts): visibility for every role, filters,
search, keyset pages, counts, bulk assignment and saved views."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from portal.contacts import list_filters, pages, quick_views
from portal.contacts.scope import visible_clause
from portal.extensions import db
from portal.models import AssignmentLog, Contact, SavedFilter
from portal.settings.service import current_account
from tests import factories

ROLES = (
    "admin",
    "coordinator",
    "manager",
    "attendant",
    "seller",
    "callcenter",
    "reception",
    "media",
    "ranking",
)
LIST_ROLES = {"admin", "coordinator", "manager", "attendant", "seller", "callcenter"}
ASSIGN_ROLES = {"admin", "coordinator", "manager"}
EXPORT_ROLES = {"admin", "coordinator", "manager"}

ROW_ID = re.compile(r'<tr id="contact-(\d+)"')
MORE_LINK = re.compile(r'<tr id="contact-more".*?href="([^"]+)"', re.S)


def row_ids(page: str) -> list[int]:
    return [int(found) for found in ROW_ID.findall(page)]


def more_url(page: str) -> str | None:
    found = MORE_LINK.search(page)
    return html.unescape(found.group(1)) if found else None


def results_of(body: str) -> str:
    """The results table of a page or fragment (not the echoed search box)."""
    start = body.find('<table class="table contacts-table"')
    return body[start : body.index("</table>", start)] if start >= 0 else ""


def visible_ids(user) -> set[int]:
    return set(db.session.scalars(select(Contact.id).where(visible_clause(user))))


def set_times(contact_ids, **values) -> None:
    db.session.execute(
        update(Contact).where(Contact.id.in_(contact_ids)).values(**values)
    )
    db.session.commit()


@pytest.fixture
def world(ctx):
    """Two teams, two units, an unassigned contact, one in a campaign nobody
    joined, and one contact per agent."""
    w = SimpleNamespace()
    w.admin = factories.make_user("admin", name="Ada Admin")
    w.coordinator = factories.make_user("coordinator", teams=["t1"])
    w.a1 = factories.make_user("attendant", name="Alice Agent", teams=["t1"])
    w.a2 = factories.make_user("attendant", name="Otto Other", teams=["t2"])
    w.manager = factories.make_user("manager", units=["u1"])
    w.s1 = factories.make_user("seller", name="Sam Seller", units=["u1"])
    w.s2 = factories.make_user("seller", name="Sol Seller", units=["u2"])
    w.callcenter = factories.make_user("callcenter")
    w.a1c = factories.make_contact(
        w.a1,
        name="Ana Inscope",
        phone="(11) 91111-1111",
        email="ana@inscope.example.com",
    )
    w.a2c = factories.make_contact(
        w.a2,
        name="Bruno Secreto",
        phone="(21) 92222-2222",
        email="bruno@secret.example.com",
    )
    w.s1c = factories.make_contact(
        w.s1, name="Carla Loja", phone="(31) 93333-3333", email="carla@loja.example.com"
    )
    w.s2c = factories.make_contact(
        w.s2, name="Caio Fora", phone="(41) 94444-4444", email="caio@fora.example.com"
    )
    w.ccc = factories.make_contact(w.callcenter, name="Cida Call")
    w.free = factories.make_contact(unassigned=True, name="Diego Livre")
    w.vip = factories.make_contact(unassigned=True, name="Elisa VIP", campaign="vip")
    w.reception = factories.make_user("reception")
    w.media = factories.make_user("media")
    w.ranking = factories.make_user("ranking")
    return w


def viewer_of(w, role: str):
    return {
        "admin": w.admin,
        "coordinator": w.coordinator,
        "manager": w.manager,
        "attendant": w.a1,
        "seller": w.s1,
        "callcenter": w.callcenter,
        "reception": w.reception,
        "media": w.media,
        "ranking": w.ranking,
    }[role]


def expected_visible(w, role: str) -> set[int]:
    everyone = {c.id for c in (w.a1c, w.a2c, w.s1c, w.s2c, w.ccc, w.free, w.vip)}
    return {
        "admin": everyone,
        "coordinator": {w.a1c.id, w.free.id, w.vip.id},
        "manager": {w.s1c.id, w.free.id, w.vip.id},
        "attendant": {w.a1c.id, w.free.id},
        "seller": {w.s1c.id, w.free.id},
        "callcenter": {w.ccc.id, w.free.id},
    }[role]


# (in scope, out of scope) per role; the admin has nothing out of scope.
def scope_pair(w, role: str):
    return {
        "admin": (w.a2c, None),
        "coordinator": (w.a1c, w.a2c),
        "manager": (w.s1c, w.s2c),
        "attendant": (w.a1c, w.a2c),
        "seller": (w.s1c, w.s2c),
        "callcenter": (w.ccc, w.a2c),
    }[role]


# --- Access ---------------------------------------------------------------------


ENDPOINTS = ("page", "fragment", "more", "counts", "export", "bulk-assign")


def call(client, endpoint: str, w):
    if endpoint == "page":
        return client.get("/contacts")
    if endpoint == "fragment":
        return client.hx_get("/contacts?owner=unassigned")
    if endpoint == "more":
        return client.hx_get(
            "/contacts?limit=1", headers={"HX-Target": "tr#contact-more"}
        )
    if endpoint == "counts":
        return client.hx_get("/contacts/counts")
    if endpoint == "export":
        return client.get("/contacts/export.csv")
    return client.hx_post(
        "/contacts/bulk-assign",
        data={"contact_id": str(w.free.id), "user_id": str(w.admin.id)},
    )


def allowed(role: str, endpoint: str) -> bool:
    if endpoint == "export":
        return role in EXPORT_ROLES
    if endpoint == "bulk-assign":
        return role in ASSIGN_ROLES
    return role in LIST_ROLES


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(client, auth, world, role, endpoint):
    auth.login(viewer_of(world, role))
    response = call(client, endpoint, world)
    if not allowed(role, endpoint):
        assert response.status_code == 403
        return
    if endpoint == "bulk-assign" and role != "admin":
        # The admin is outside everyone else's scope: refused, not forbidden.
        assert response.status_code == 200
        assert "1 refused" in response.get_data(as_text=True)
        return
    assert response.status_code == 200
    if endpoint != "page" and endpoint != "export":
        assert "<html" not in response.get_data(as_text=True)


def test_signed_out_list_redirects_to_sign_in(client, world):
    response = client.get("/contacts")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", sorted(LIST_ROLES))
def test_the_list_is_exactly_what_the_scope_allows(client, auth, world, role):
    viewer = viewer_of(world, role)
    assert visible_ids(viewer) == expected_visible(world, role)
    auth.login(viewer)
    page = client.get("/contacts").get_data(as_text=True)
    assert set(row_ids(page)) == expected_visible(world, role)
    fragment = client.hx_get("/contacts").get_data(as_text=True)
    assert set(row_ids(fragment)) == expected_visible(world, role)


@pytest.mark.parametrize("role", sorted(LIST_ROLES))
def test_out_of_scope_contact_is_absent_everywhere(client, auth, world, role):
    inside, outside = scope_pair(world, role)
    auth.login(viewer_of(world, role))
    for q in (inside.name, inside.email, inside.phone):
        if not q:
            continue
        found = client.hx_get("/contacts", query_string={"q": q})
        assert inside.id in row_ids(found.get_data(as_text=True)), q
    if outside is None:
        return
    searches = [outside.name, outside.email, outside.phone, outside.phone_e164]
    for q in searches + [outside.phone_national]:
        for get in (client.get, client.hx_get):
            response = get("/contacts", query_string={"q": q})
            assert response.status_code == 200
            results = results_of(response.get_data(as_text=True))
            assert "No contacts match." in results, q
            assert outside.name not in results and outside.email not in results
    by_owner = client.hx_get("/contacts", query_string={"owner": outside.owner_id})
    assert row_ids(by_owner.get_data(as_text=True)) == []
    counts = client.hx_get("/contacts/counts").get_data(as_text=True)
    visible_count = len(expected_visible(world, role))
    assert f'data-view="all">{visible_count}<' in counts
    if role in EXPORT_ROLES:
        csv_text = client.get("/contacts/export.csv").get_data(as_text=True)
        assert inside.name in csv_text
        assert outside.name not in csv_text and outside.email not in csv_text


def test_agent_sees_a_campaign_contact_only_as_a_member(client, auth, world):
    auth.login(world.a1)
    assert world.vip.id not in row_ids(client.get("/contacts").get_data(as_text=True))
    factories.add_to_campaign(world.a1, "vip")
    assert world.vip.id in row_ids(client.get("/contacts").get_data(as_text=True))


# --- Filters --------------------------------------------------------------------


def ids_for(user, **args) -> list[int]:
    filters = list_filters.parse_filters(
        current_account(), {k: str(v) for k, v in args.items()}
    )
    return [c.id for c in pages.list_contacts(user, filters).contacts]


def test_owner_filters(world):
    admin = world.admin
    assert set(ids_for(world.a1, owner="me")) == {world.a1c.id}
    assert set(ids_for(admin, owner="unassigned")) == {world.free.id, world.vip.id}
    assert set(ids_for(admin, owner=world.s2.id)) == {world.s2c.id}
    assert ids_for(admin, owner="me") == []


def test_status_origin_department_and_campaign_filters(world):
    admin = world.admin
    web = factories.make_contact(world.a1, origin="web", department="sales")
    camp = factories.make_contact(world.a1, campaign="spring", department="support")
    set_times([world.s1c.id], status="won")
    assert ids_for(admin, status="won") == [world.s1c.id]
    assert set(ids_for(admin, status="new")) == {world.free.id, world.vip.id}
    assert ids_for(admin, origin="web") == [web.id]
    assert ids_for(admin, department="sales") == [web.id]
    assert ids_for(admin, department="support") == [camp.id]
    assert ids_for(admin, campaign="spring") == [camp.id]
    assert ids_for(admin, campaign="vip") == [world.vip.id]


def test_team_and_unit_filters(world):
    from portal.models import Team, Unit

    admin = world.admin
    t1 = db.session.scalar(select(Team.id).where(Team.key == "t1"))
    u2 = db.session.scalar(select(Unit.id).where(Unit.key == "u2"))
    assert set(ids_for(admin, team=t1)) == {world.a1c.id}
    assert set(ids_for(admin, unit=u2)) == {world.s2c.id}
    # A filter narrows the scope, never widens it.
    assert ids_for(world.coordinator, unit=u2) == []


def test_created_and_activity_ranges(world):
    admin = world.admin
    set_times([world.a1c.id], created_at=datetime(2024, 3, 10, 23, 59, tzinfo=UTC))
    set_times([world.a2c.id], created_at=datetime(2024, 3, 11, 0, 0, tzinfo=UTC))
    set_times([world.s1c.id], last_activity_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert ids_for(admin, created_from="2024-03-10", created_to="2024-03-10") == [
        world.a1c.id
    ]
    assert set(ids_for(admin, created_from="2024-03-01", created_to="2024-03-31")) == {
        world.a1c.id,
        world.a2c.id,
    }
    assert ids_for(admin, active_to="2024-05-01") == [world.s1c.id]
    assert world.s1c.id not in ids_for(admin, active_from="2024-05-02")


def test_open_too_long_uses_the_account_setting(world):
    admin = world.admin
    account = current_account()
    account.open_too_long_hours = 24
    db.session.commit()
    old = datetime.now(UTC) - timedelta(hours=30)
    set_times([world.a1c.id, world.s1c.id], last_activity_at=old)
    set_times([world.s1c.id], status="lost")  # closed: never "open too long"
    assert ids_for(admin, open_too_long=1) == [world.a1c.id]
    account.open_too_long_hours = 48
    db.session.commit()
    assert ids_for(admin, open_too_long=1) == []


def test_filtered_view_through_http_keeps_the_canonical_url(client, auth, world):
    auth.login(world.admin)
    response = client.hx_get(
        "/contacts",
        query_string={"q": "", "owner": "unassigned", "status": "", "sort": "newest"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/contacts?owner=unassigned"
    body = response.get_data(as_text=True)
    assert set(row_ids(body)) == {world.free.id, world.vip.id}
    assert "<html" not in body
    # The view tools follow the filters: export link and the saved query.
    assert 'href="/contacts/export.csv?owner=unassigned"' in body
    assert 'name="query" form="save-view" value="owner=unassigned"' in body


# --- Search ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "(11) 91234",
        "+55 11 9123",
        "11912",
        "5511912345678",
        "011 91234-5678",
        "1191234-5678",
    ],
)
def test_phone_search_in_any_format(world, query):
    wanted = factories.make_contact(world.a1, name="Fone", phone="+55 (11) 91234-5678")
    factories.make_contact(world.a1, name="Outro", phone="(11) 95555-0000")
    assert ids_for(world.admin, q=query) == [wanted.id]


def test_phone_search_needs_three_digits_and_is_a_prefix(world):
    factories.make_contact(world.a1, name="Fone", phone="(11) 91234-5678")
    assert ids_for(world.admin, q="12345678") == []  # not a prefix
    assert ids_for(world.admin, q="11") == []  # two digits: a name search


@pytest.mark.parametrize("query", ["joao", "João", "JOAO S", "joão silva", "jo"])
def test_name_search_folds_accents_and_case(world, query):
    wanted = factories.make_contact(world.a1, name="João Silva")
    factories.make_contact(world.a1, name="Joana Dark")
    found = ids_for(world.admin, q=query)
    assert wanted.id in found
    if len(query) > 2:
        assert found == [wanted.id]


def test_name_search_is_a_prefix_of_the_whole_name(world):
    factories.make_contact(world.a1, name="João Silva")
    assert ids_for(world.admin, q="silva") == []


def test_email_search_is_a_prefix(world):
    assert ids_for(world.admin, q="ANA@in") == [world.a1c.id]
    assert ids_for(world.admin, q="ana@out") == []


def test_search_text_is_not_sql(world):
    for q in ("%", "_", "' OR 1=1 --", "ana%", "a_a"):
        assert ids_for(world.admin, q=q) == []


# --- Keyset pages ---------------------------------------------------------------


@pytest.fixture
def many(ctx):
    """120 contacts whose timestamps tie in groups of 7."""
    admin = factories.make_user("admin")
    ids = [factories.make_contact(admin, name=f"Page {n:03d}").id for n in range(120)]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for group_start in range(0, 120, 7):
        group = ids[group_start : group_start + 7]
        moment = base + timedelta(minutes=group_start)
        set_times(group, created_at=moment, last_activity_at=moment)
    return SimpleNamespace(admin=admin, ids=ids)


def expected_order(ids: list[int], sort: str) -> list[int]:
    rows = db.session.execute(
        select(Contact.id, Contact.last_activity_at).where(Contact.id.in_(ids))
    ).all()
    if sort == "oldest":
        return sorted(ids)
    if sort == "newest":
        return sorted(ids, reverse=True)
    return [r.id for r in sorted(rows, key=lambda r: (r[1], r.id), reverse=True)]


@pytest.mark.parametrize("sort", list_filters.SORTS)
def test_load_more_walks_every_contact_once_in_order(client, auth, many, sort):
    auth.login(many.admin)
    url = f"/contacts?sort={sort}&limit=25"
    first = client.hx_get(url)
    assert first.status_code == 200
    seen = row_ids(first.get_data(as_text=True))
    url = more_url(first.get_data(as_text=True))
    pages = 1
    while url:
        assert "cursor=" in url
        # The default sort is left out of the canonical query string.
        assert (f"sort={sort}" in url) == (sort != "newest")
        response = client.hx_get(url, headers={"HX-Target": "tr#contact-more"})
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert "<html" not in body and "<table" not in body
        seen += row_ids(body)
        url = more_url(body)
        pages += 1
    assert pages == 5
    assert len(seen) == len(set(seen)) == 120
    assert seen == expected_order(many.ids, sort)


@pytest.mark.parametrize("sort", list_filters.SORTS)
def test_plain_page_links_carry_the_cursor_without_javascript(client, auth, many, sort):
    auth.login(many.admin)
    page = client.get(f"/contacts?sort={sort}&limit=50").get_data(as_text=True)
    second = client.get(more_url(page))
    assert second.status_code == 200
    body = second.get_data(as_text=True)
    assert "<html" in body
    assert row_ids(body) == expected_order(many.ids, sort)[50:100]


def test_a_page_ends_without_a_more_link(client, auth, many):
    auth.login(many.admin)
    body = client.get("/contacts?limit=200").get_data(as_text=True)
    assert len(row_ids(body)) == 120
    assert more_url(body) is None


def test_keyset_walk_of_a_restricted_agent_merges_mine_and_unassigned(ctx):
    agent = factories.make_user("attendant")
    other = factories.make_user("attendant")
    mine = [factories.make_contact(agent).id for _ in range(6)]
    free = [factories.make_contact(unassigned=True).id for _ in range(6)]
    factories.make_contact(other)
    seen: list[int] = []
    filters = list_filters.parse_filters(current_account(), {"limit": "4"})
    while True:
        page = pages.list_contacts(agent, filters)
        seen += [c.id for c in page.contacts]
        if not page.next_cursor:
            break
        filters = list_filters.parse_filters(
            current_account(), {"limit": "4", "cursor": page.next_cursor}
        )
    assert seen == sorted(mine + free, reverse=True)


def tamper(cursor: str) -> str:
    flipped = "A" if cursor[5] != "A" else "B"
    return cursor[:5] + flipped + cursor[6:]


def test_tampered_cursor_is_400_with_a_message(client, auth, many):
    auth.login(many.admin)
    page = client.get("/contacts?limit=10").get_data(as_text=True)
    cursor = re.search(r"cursor=([^&\"]+)", more_url(page)).group(1)
    for bad in (tamper(cursor), "garbage", cursor[:-3], "e30", "%%%", "x" * 500):
        response = client.get("/contacts", query_string={"cursor": bad, "limit": 10})
        assert response.status_code == 400, bad
        assert "not valid" in response.get_data(as_text=True)
    other_sort = client.get(
        "/contacts", query_string={"cursor": cursor, "sort": "last_activity"}
    )
    assert other_sort.status_code == 400
    assert "another sort" in other_sort.get_data(as_text=True)
    fragment = client.hx_get("/contacts", query_string={"cursor": tamper(cursor)})
    assert fragment.status_code == 400
    assert "<html" not in fragment.get_data(as_text=True)


# --- Bad filter values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        ({"status": "bogus"}, "status", "Pick from the list."),
        ({"origin": "fax"}, "origin", "Pick from the list."),
        ({"owner": "abc"}, "owner", "Pick from the list."),
        ({"owner": "999999"}, "owner", "Pick from the list."),
        ({"department": "nope"}, "department", "Pick from the list."),
        ({"campaign": "nope"}, "campaign", "Pick from the list."),
        ({"team": "x1"}, "team", "Pick from the list."),
        ({"unit": "424242"}, "unit", "Pick from the list."),
        ({"created_from": "2024-13-45"}, "created_from", "Use a date like"),
        ({"active_to": "yesterday"}, "active_to", "Use a date like"),
        (
            {"created_from": "2024-05-02", "created_to": "2024-05-01"},
            "created_to",
            "The end comes before the start.",
        ),
        ({"sort": "sideways"}, "sort", "Pick from the list."),
        ({"open_too_long": "maybe"}, "open_too_long", "Pick from the list."),
        ({"limit": "ten"}, "limit", "Use a whole number."),
        ({"q": "x" * 201}, "q", "Use at most 200 characters."),
    ],
)
def test_bad_filter_values_are_named_next_to_the_filter(
    client, auth, world, args, field, message
):
    auth.login(world.admin)
    page = client.get("/contacts", query_string=args)
    assert page.status_code == 422
    body = page.get_data(as_text=True)
    slot = re.search(rf'<span id="ferr-{field}" class="ferr">(.*?)</span>', body, re.S)
    assert slot and message in html.unescape(slot.group(1))
    assert row_ids(body) == []
    fragment = client.hx_get("/contacts", query_string=args)
    assert fragment.status_code == 422
    text = fragment.get_data(as_text=True)
    assert "<html" not in text
    assert re.search(
        rf'hx-target="#ferr-{field}"[^>]*><span id="ferr-{field}" class="ferr">'
        rf'<small class="field-error"[^>]*>{re.escape(html.escape(message))}',
        text,
    ), text


def test_limit_is_clamped(world):
    filters = list_filters.parse_filters(current_account(), {"limit": "100000"})
    assert filters.limit == list_filters.MAX_LIMIT
    assert list_filters.parse_filters(current_account(), {"limit": "0"}).limit == 1


# --- Rows -----------------------------------------------------------------------


def test_names_with_markup_are_escaped(client, auth, world):
    evil = factories.make_contact(world.a1, name="<script>alert(1)</script>")
    auth.login(world.admin)
    for response in (client.get("/contacts"), client.hx_get("/contacts")):
        body = response.get_data(as_text=True)
        assert evil.id in row_ids(body)
        assert "<script>alert(1)</script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_rows_link_to_the_profile_and_carry_the_owner_component(client, auth, world):
    auth.login(world.coordinator)
    body = client.get("/contacts").get_data(as_text=True)
    assert f'href="/contacts/{world.a1c.id}"' in body
    assert f'id="owner-{world.a1c.id}"' in body
    # Rows carry a "Change" that fetches the picker; no per-row <select>.
    assert f'hx-get="/contacts/{world.free.id}/owner"' in body
    assert f'id="assign-{world.free.id}"' not in body
    assert 'form="bulk-assign"' in body
    picker = client.hx_get(f"/contacts/{world.free.id}/owner")
    assert picker.status_code == 200
    html = picker.get_data(as_text=True)
    assert "<html" not in html
    assert f'action="/contacts/{world.free.id}/assign"' in html
    assert f'id="assign-{world.free.id}"' in html


def test_owner_picker_of_a_contact_out_of_scope_is_404(client, auth, world):
    auth.login(world.a1)
    assert client.hx_get(f"/contacts/{world.s1c.id}/owner").status_code == 404


def test_agent_rows_offer_take_it_and_no_bulk_bar(client, auth, world):
    auth.login(world.a1)
    body = client.get("/contacts").get_data(as_text=True)
    assert "Take it" in body
    assert 'id="bulk-assign"' not in body and 'form="bulk-assign"' not in body
    assert "Export CSV" not in body


# --- Counts ---------------------------------------------------------------------


def count_of(body: str, view: str) -> str:
    return re.search(rf'data-view="{view}">([^<]+)<', body).group(1)


def test_counts_fragment_counts_each_quick_view(client, auth, world):
    old = datetime.now(UTC) - timedelta(days=30)
    set_times([world.a1c.id, world.a2c.id], last_activity_at=old)
    auth.login(world.a1)
    response = client.hx_get("/contacts/counts?current=mine")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert count_of(body, "all") == "2"
    assert count_of(body, "mine") == "1"
    assert count_of(body, "unassigned") == "1"
    assert count_of(body, "open_too_long") == "1"  # a2c is not Alice's to see
    assert 'aria-current="page">Mine' in body


def test_page_loads_counts_lazily(client, auth, world):
    auth.login(world.admin)
    body = client.get("/contacts?owner=me").get_data(as_text=True)
    assert 'hx-get="/contacts/counts?current=mine" hx-trigger="load"' in body
    assert "data-view=" not in body


def test_counting_stops_at_the_cap(world):
    for _ in range(4):
        factories.make_contact(world.a1)
    filters = list_filters.parse_filters(current_account(), {"owner": "me"})
    assert quick_views.capped_count(world.a1, filters, cap=3) == quick_views.Count(
        3, True
    )
    assert quick_views.capped_count(world.a1, filters, cap=5) == quick_views.Count(
        5, False
    )
    everything = list_filters.parse_filters(current_account(), {})
    # Mine (5) plus the unassigned one, counted across both branches.
    assert quick_views.capped_count(world.a1, everything, cap=5) == quick_views.Count(
        5, True
    )
    assert quick_views.capped_count(world.a1, everything, cap=6) == quick_views.Count(
        6, False
    )


def test_capped_counts_read_as_cap_plus(client, auth, world, monkeypatch):
    # The cap is a constant of the module; a small one keeps the test fast.
    monkeypatch.setattr(quick_views, "COUNT_CAP", 2)
    auth.login(world.admin)
    body = client.hx_get("/contacts/counts").get_data(as_text=True)
    assert count_of(body, "all") == "2+"
    assert count_of(body, "mine") == "0"


# --- Bulk assign ----------------------------------------------------------------


def test_bulk_assign_gives_every_selected_contact(client, auth, world):
    extra = [factories.make_contact(unassigned=True) for _ in range(2)]
    chosen = [world.free.id, extra[0].id, extra[1].id]
    auth.login(world.manager)
    response = client.hx_post(
        "/contacts/bulk-assign",
        data={"contact_id": [str(i) for i in chosen], "user_id": str(world.s1.id)},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert "3 assigned." in body
    for contact_id in chosen:
        assert f'<hx-partial hx-target="#contact-{contact_id}"' in body
    assert body.count("Sam Seller") >= 3
    db.session.expire_all()
    owners = db.session.scalars(select(Contact.owner_id).where(Contact.id.in_(chosen)))
    assert set(owners) == {world.s1.id}
    hows = set(
        db.session.scalars(
            select(AssignmentLog.how).where(AssignmentLog.contact_id.in_(chosen))
        )
    )
    assert hows == {"bulk"}


def test_bulk_assign_reports_partial_refusal(client, auth, world):
    auth.login(world.manager)
    response = client.hx_post(
        "/contacts/bulk-assign",
        data={
            "contact_id": [str(world.free.id), str(world.s2c.id), "987654"],
            "user_id": str(world.s1.id),
        },
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "1 assigned; 2 refused: Not found." in body
    assert world.s2c.name not in body  # out of scope: not even refreshed
    db.session.expire_all()
    assert db.session.get(Contact, world.s2c.id).owner_id == world.s2.id
    assert db.session.get(Contact, world.free.id).owner_id == world.s1.id


def test_bulk_assign_to_someone_out_of_scope_is_refused(client, auth, world):
    auth.login(world.coordinator)
    response = client.hx_post(
        "/contacts/bulk-assign",
        data={"contact_id": [str(world.free.id)], "user_id": str(world.s1.id)},
    )
    body = response.get_data(as_text=True)
    assert "0 assigned; 1 refused: You may not assign contacts to that user." in body
    db.session.expire_all()
    assert db.session.get(Contact, world.free.id).owner_id is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"user_id": "1"}, "Select at least one contact."),
        ({"contact_id": "1"}, "Pick whom to assign to."),
        ({"contact_id": "abc", "user_id": "1"}, "Pick from the list."),
    ],
)
def test_bulk_assign_bad_input_is_422(client, auth, world, data, message):
    auth.login(world.admin)
    response = client.hx_post("/contacts/bulk-assign", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_bulk_assign_without_javascript_redirects_back_to_the_list(client, auth, world):
    auth.login(world.admin)
    response = client.post(
        "/contacts/bulk-assign",
        data={
            "contact_id": str(world.free.id),
            "user_id": str(world.a1.id),
            "back": "owner=unassigned&evil=http://example.com",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/contacts?owner=unassigned"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 assigned." in page


def test_bulk_assign_needs_csrf(client, auth, world):
    auth.login(world.admin)
    response = client.post(
        "/contacts/bulk-assign",
        data={"contact_id": str(world.free.id), "user_id": str(world.a1.id)},
        csrf=False,
    )
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Contact, world.free.id).owner_id is None


# --- Saved views ----------------------------------------------------------------


def test_save_list_and_delete_a_view(client, auth, world):
    auth.login(world.manager)
    response = client.hx_post(
        "/contacts/saved-views",
        data={
            "name": "Waiting <b>queue</b>",
            "query": "?q=&owner=unassigned&cursor=abc",
        },
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert (
        'href="/contacts?owner=unassigned">'
        "<bdi>Waiting &lt;b&gt;queue&lt;/b&gt;</bdi></a>" in body
    )
    (saved,) = db.session.scalars(select(SavedFilter))
    assert (saved.user_id, saved.query) == (world.manager.id, "owner=unassigned")
    page = client.get("/contacts").get_data(as_text=True)
    assert "Waiting &lt;b&gt;queue&lt;/b&gt;" in page
    again = client.hx_post(
        "/contacts/saved-views",
        data={"name": "Waiting <b>queue</b>", "query": "status=won"},
    )
    assert again.status_code == 200
    db.session.expire_all()
    (saved,) = db.session.scalars(select(SavedFilter))
    assert saved.query == "status=won"
    deleted = client.hx_post(f"/contacts/saved-views/{saved.id}/delete")
    assert deleted.status_code == 200
    assert db.session.scalars(select(SavedFilter)).all() == []


def test_saved_views_are_private(client, auth, world):
    auth.login(world.manager)
    client.post(
        "/contacts/saved-views", data={"name": "Mine only", "query": "owner=me"}
    )
    (saved,) = db.session.scalars(select(SavedFilter))
    auth.logout()
    auth.login(world.coordinator)
    assert "Mine only" not in client.get("/contacts").get_data(as_text=True)
    assert client.post(f"/contacts/saved-views/{saved.id}/delete").status_code == 404
    assert client.hx_post(f"/contacts/saved-views/{saved.id}/delete").status_code == 404
    assert db.session.scalars(select(SavedFilter)).all() != []


def test_saving_without_javascript_redirects_to_the_view(client, auth, world):
    auth.login(world.a1)
    response = client.post(
        "/contacts/saved-views", data={"name": "Hot", "query": "status=new&sort=oldest"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/contacts?status=new&sort=oldest"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "query": "owner=me"}, "Give this view a name."),
        ({"name": "x" * 101, "query": "owner=me"}, "Use at most 100 characters."),
        ({"name": "Bad", "query": "status=bogus"}, "Fix the filters before saving"),
    ],
)
def test_bad_saved_views_are_refused(client, auth, world, data, message):
    auth.login(world.a1)
    response = client.hx_post("/contacts/saved-views", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalars(select(SavedFilter)).all() == []
