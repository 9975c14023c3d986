"""Teams, units and departments administration."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from portal.extensions import db
from portal.models import Account, Department, Team, TeamMember, Unit, User
from portal.models.permissions import PRESETS_BY_KEY, ROLE_PRESETS
from portal.org import service as org
from portal.roles.service import RoleInput, create_role
from portal.settings.service import current_account, ensure_builtin_roles
from tests import factories

BUILTIN_ROLES = [preset.key for preset in ROLE_PRESETS]

# (method, url, permission it needs); record URLs point at id 1, which every
# test below creates first.
ENDPOINTS = [
    ("GET", "/admin/teams", "teams.manage"),
    ("POST", "/admin/teams", "teams.manage"),
    ("GET", "/admin/teams/1/edit", "teams.manage"),
    ("POST", "/admin/teams/1", "teams.manage"),
    ("GET", "/admin/teams/1/delete", "teams.manage"),
    ("POST", "/admin/teams/1/delete", "teams.manage"),
    ("GET", "/admin/units", "units.manage"),
    ("POST", "/admin/units", "units.manage"),
    ("GET", "/admin/units/1/edit", "units.manage"),
    ("POST", "/admin/units/1", "units.manage"),
    ("POST", "/admin/units/1/delete", "units.manage"),
    ("GET", "/admin/departments", "departments.manage"),
    ("POST", "/admin/departments", "departments.manage"),
    ("GET", "/admin/departments/1/edit", "departments.manage"),
    ("POST", "/admin/departments/1", "departments.manage"),
    ("POST", "/admin/departments/1/delete", "departments.manage"),
]


def _structure():
    account = current_account()
    org.create_team(account, "alpha", "Alpha")
    org.create_unit(account, "downtown", "Downtown")
    org.create_department(account, "sales", "Sales")


def _member(role: str, **kwargs) -> User:
    """A user who never signs in: no password to hash, so tests stay quick."""
    return factories.make_user(role, password=None, **kwargs)


def _counts() -> tuple[int, int, int]:
    return tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Team, Unit, Department)
    )


def _form(url: str) -> dict[str, str]:
    return {} if url.endswith("/delete") else {"key": "new-one", "name": "New one"}


@pytest.mark.parametrize("role", BUILTIN_ROLES)
@pytest.mark.parametrize(("method", "url", "permission"), ENDPOINTS)
def test_only_roles_holding_the_permission_get_in(
    client, auth, ctx, role, method, url, permission
):
    _structure()
    auth.login(factories.make_user(role))
    before = _counts()
    send = client.get if method == "GET" else client.post
    response = send(url, data=_form(url))
    if permission in PRESETS_BY_KEY[role].permissions:
        assert response.status_code in (200, 303)
    else:
        assert response.status_code == 403
        db.session.expire_all()
        assert _counts() == before
        assert db.session.get(Team, 1).name == "Alpha"


def test_among_builtin_roles_only_admin_manages_structure():
    for preset in ROLE_PRESETS:
        holds = {"teams.manage", "units.manage", "departments.manage"} & (
            preset.permissions
        )
        assert bool(holds) == (preset.key == "admin"), preset.key


def _custom_role_user(*permissions: str) -> User:
    account = current_account()
    key = "custom-" + "-".join(p.split(".")[0] for p in permissions)
    create_role(account, RoleInput(key=key, name=key, permissions=list(permissions)))
    return factories.make_user(key)


def test_checks_are_by_permission_not_role_name(client, auth, ctx):
    _structure()
    auth.login(_custom_role_user("departments.manage"))
    assert client.get("/admin/departments").status_code == 200
    created = client.post("/admin/departments", data={"key": "rent", "name": "Rent"})
    assert created.status_code == 303
    assert client.get("/admin/teams").status_code == 403
    assert client.get("/admin/units").status_code == 403
    assert (
        client.post("/admin/teams", data={"key": "t", "name": "T"}).status_code == 403
    )
    assert (
        client.post("/admin/units/1/store-flow", data={"store_flow": "1"}).status_code
        == 403
    )


def test_navigation_shows_only_the_pages_the_role_may_use(client, auth, ctx):
    auth.login(_custom_role_user("departments.manage"))
    page = client.get("/admin/departments").get_data(as_text=True)
    assert 'href="/admin/departments"' in page
    assert 'href="/admin/teams"' not in page


# --- Listing ---------------------------------------------------------------


def test_team_list_shows_coordinators_members_and_counts(client, auth, ctx):
    admin = factories.make_user("admin")
    _member("coordinator", name="Cora Lead", teams=["alpha"])
    _member("attendant", name="Ann One", teams=["alpha"])
    _member("attendant", name="Ben Two", teams=["alpha"])
    auth.login(admin)
    page = client.get("/admin/teams").get_data(as_text=True)
    row = page[page.index('id="team-1"') :]
    assert "Cora Lead" in row
    assert "2 members" in row
    assert "<bdi>Ann One</bdi>, <bdi>Ben Two</bdi>" in row


def test_unit_list_shows_managers_sellers_and_store_flow(client, auth, ctx):
    admin = factories.make_user("admin")
    _member("manager", name="Mia Boss", units=["downtown"])
    _member("seller", name="Sam Sells", units=["downtown"])
    auth.login(admin)
    page = client.get("/admin/units").get_data(as_text=True)
    row = page[page.index('id="unit-1"') :]
    assert "Mia Boss" in row
    assert "1 seller" in row
    assert "Sam Sells" in row
    assert 'aria-pressed="false"' in row


def test_department_list_counts_users_but_not_deleted_ones(client, auth, ctx):
    admin = factories.make_user("admin")
    _member("attendant", departments=["sales"])
    gone = _member("attendant", departments=["sales"])
    _member("attendant", departments=["rent"])
    gone.status = "deleted"
    db.session.commit()
    rows = {
        r.department.key: r.user_count for r in org.list_departments(current_account())
    }
    assert rows == {"sales": 1, "rent": 1}
    auth.login(admin)
    page = client.get("/admin/departments").get_data(as_text=True)
    assert '<td data-label="Users">1</td>' in page


def _count_queries(fn) -> int:
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return len(statements)


def _people_in(n: int) -> None:
    # No passwords: hashing 48 of them would be most of the test's time.
    make = factories.make_user
    make("manager", units=[f"u{n}"], departments=[f"d{n}"], password=None)
    make("seller", units=[f"u{n}"], password=None)
    make("coordinator", teams=[f"t{n}"], password=None)
    make("attendant", teams=[f"t{n}"], departments=[f"d{n}"], password=None)


@pytest.mark.parametrize(
    "lister", [org.list_teams, org.list_units, org.list_departments]
)
def test_lists_take_the_same_queries_for_2_or_12_rows(ctx, lister):
    account = current_account()
    for n in range(2):
        _people_in(n)
    db.session.expire_all()
    few = _count_queries(lambda: lister(account))
    for n in range(2, 12):
        _people_in(n)
    db.session.expire_all()
    many = _count_queries(lambda: lister(account))
    rows = lister(account)
    assert len(rows) == 12
    assert many == few <= 3
    # and the counts are right
    for row in rows:
        assert getattr(row, "member_count", getattr(row, "user_count", None)) == 2


def test_filter_as_you_type_returns_only_the_list(client, auth, ctx):
    account = current_account()
    org.create_team(account, "alpha", "Alpha Sales")
    org.create_team(account, "beta", "Beta Rentals")
    org.create_team(account, "moscow", "Москва")
    auth.login(factories.make_user("admin"))
    response = client.hx_get(
        "/admin/teams?q=SALES", headers={"HX-Target": "div#team-list"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="team-list">')
    assert "Alpha Sales" in html and "Beta" not in html
    # Case folding works beyond ASCII, on SQLite as on PostgreSQL.
    cyrillic = client.hx_get(
        "/admin/teams?q=МОСК", headers={"HX-Target": "div#team-list"}
    ).get_data(as_text=True)
    assert "Москва" in cyrillic and "Alpha" not in cyrillic
    # Without htmx the same URL is the whole page, filtered.
    page = client.get("/admin/teams?q=beta").get_data(as_text=True)
    assert "<html" in page and "Beta Rentals" in page and "Alpha Sales" not in page


# --- Creating --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["teams", "units", "departments"])
def test_create_with_htmx_returns_a_fresh_form_the_list_and_a_flash(
    client, auth, ctx, kind
):
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        f"/admin/{kind}", data={"key": "North-1", "name": "  North   Side "}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert '<hx-partial hx-target="#flash"' in html
    assert "North Side" in html  # in the refreshed list
    assert f'hx-target="#{kind[:-1]}-list"' in html
    model = {"teams": Team, "units": Unit, "departments": Department}[kind]
    row = db.session.scalar(select(model))
    assert (row.key, row.name) == ("north-1", "North Side")


def test_create_without_javascript_redirects_with_a_flash(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.post("/admin/departments", data={"key": "sales", "name": "Sales"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/departments"
    page = client.get("/admin/departments").get_data(as_text=True)
    assert "Department Sales created." in page


@pytest.mark.parametrize("kind", ["teams", "units", "departments"])
@pytest.mark.parametrize("duplicate", ["sales", "SALES", " Sales "])
def test_duplicate_key_in_any_case_is_refused_on_the_key_field(
    client, auth, ctx, kind, duplicate
):
    auth.login(factories.make_user("admin"))
    assert (
        client.post(f"/admin/{kind}", data={"key": "sales", "name": "A"}).status_code
        == 303
    )
    before = _counts()
    response = client.hx_post(f"/admin/{kind}", data={"key": duplicate, "name": "B"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert 'id="error-key"' in html and "already has this key" in html
    assert 'id="error-name"' not in html
    assert _counts() == before


@pytest.mark.parametrize(
    "key", ["", "sales team", "vendas/sp", "-sales", "ção", "a" * 51, "<b>"]
)
def test_bad_key_characters_are_refused(client, auth, ctx, key):
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/teams", data={"key": key, "name": "Fine"})
    assert response.status_code == 422
    assert 'id="error-key"' in response.get_data(as_text=True)
    assert _counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Required."), ("   ", "Required."), ("x" * 201, "at most 200")],
)
def test_empty_or_overlong_name_is_refused(client, auth, ctx, name, message):
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/units", data={"key": "ok", "name": name})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="error-name"' in html and message in html
    assert _counts() == (0, 0, 0)


def test_errors_without_javascript_show_the_whole_page_with_the_message(
    client, auth, ctx
):
    auth.login(factories.make_user("admin"))
    response = client.post("/admin/teams", data={"key": "bad key", "name": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html
    assert 'id="error-key"' in html and 'id="error-name"' in html
    assert 'value="bad key"' in html  # what was typed stays


def test_html_in_names_is_shown_escaped(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    evil = '<script>alert("x")</script>'
    response = client.hx_post("/admin/teams", data={"key": "evil", "name": evil})
    assert response.status_code == 200
    for html in (
        response.get_data(as_text=True),
        client.get("/admin/teams").get_data(as_text=True),
    ):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(" in html


def test_confirm_text_starting_with_js_stays_a_text(client, auth, ctx):
    # htmx evaluates an hx-confirm that starts with "js:" as code.
    org.create_team(current_account(), "evil", "js:alert(1)")
    org.create_team(current_account(), "x", "x")
    auth.login(factories.make_user("admin"))
    html = client.get("/admin/teams").get_data(as_text=True)
    assert 'hx-confirm="js:' not in html
    assert "js:alert(1)" in html


# --- Renaming in place -------------------------------------------------------


def test_rename_in_place_with_htmx(client, auth, ctx):
    _structure()
    auth.login(factories.make_user("admin"))
    edit = client.hx_get("/admin/teams/1/edit", headers={"HX-Target": "tr#team-1"})
    html = edit.get_data(as_text=True)
    assert edit.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith('<tr id="team-1">')
    assert 'hx-post="/admin/teams/1"' in html and 'value="Alpha"' in html

    saved = client.hx_post(
        "/admin/teams/1", data={"name": "Alpha Prime", "key": "hacked"}
    )
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200
    assert "<html" not in html
    assert '<tr id="team-1">' in html and "Alpha Prime" in html
    assert "Team renamed to Alpha Prime." in html
    team = db.session.get(Team, 1)
    db.session.refresh(team)
    assert (team.key, team.name) == ("alpha", "Alpha Prime")  # the key stays

    cancel = client.hx_get("/admin/teams/1")
    assert cancel.get_data(as_text=True).strip().startswith('<tr id="team-1">')


@pytest.mark.parametrize("kind", ["teams", "units", "departments"])
def test_rename_with_an_empty_name_shows_the_error_in_the_row(client, auth, ctx, kind):
    _structure()
    auth.login(factories.make_user("admin"))
    response = client.hx_post(f"/admin/{kind}/1", data={"name": " "})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert 'id="error-name"' in html and "Required." in html
    assert f'<tr id="{kind[:-1]}-1">' in html
    db.session.expire_all()
    assert {t.name for t in db.session.scalars(select(Team))} == {"Alpha"}


def test_rename_without_javascript(client, auth, ctx):
    _structure()
    auth.login(factories.make_user("admin"))
    page = client.get("/admin/units/1/edit").get_data(as_text=True)
    assert "<html" in page and 'action="/admin/units/1"' in page
    response = client.post("/admin/units/1", data={"name": "Uptown"})
    assert response.status_code == 303
    assert "Unit renamed to Uptown." in client.get("/admin/units").get_data(
        as_text=True
    )
    invalid = client.post("/admin/units/1", data={"name": "x" * 201})
    assert invalid.status_code == 422
    assert "<html" in invalid.get_data(as_text=True)


# --- Deleting ----------------------------------------------------------------


def test_delete_team_with_members_removes_the_memberships_once_confirmed(
    client, auth, ctx
):
    admin = factories.make_user("admin")
    member = _member("attendant", teams=["alpha"])
    _member("coordinator", teams=["alpha"])
    _member("attendant", teams=["beta"])
    auth.login(admin)
    # The dialog said "2 members" and the admin agreed.
    response = client.hx_post("/admin/teams/1/delete", data={"confirmed": "2"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="team-list">')
    assert "Team alpha deleted." in html
    db.session.expire_all()
    assert [t.key for t in db.session.scalars(select(Team))] == ["beta"]
    assert db.session.scalar(select(func.count()).select_from(TeamMember)) == 1
    assert db.session.get(User, member.id).status == "active"  # still a user


@pytest.mark.parametrize("confirmed", [None, "", "1", "abc"])
def test_delete_team_refused_unless_the_confirmed_count_is_current(
    client, auth, ctx, confirmed
):
    admin = factories.make_user("admin")
    _member("attendant", teams=["alpha"])
    _member("attendant", teams=["alpha"])
    auth.login(admin)
    data = {} if confirmed is None else {"confirmed": confirmed}
    response = client.hx_post("/admin/teams/1/delete", data=data)
    assert response.status_code == 409
    assert "has 2 members now" in response.get_data(as_text=True)
    assert response.headers["HX-Retarget"] == "#flash"
    assert db.session.scalar(select(func.count()).select_from(TeamMember)) == 2
    assert db.session.scalar(select(func.count()).select_from(Team)) == 1


def test_delete_without_javascript_asks_on_a_page_first(client, auth, ctx):
    admin = factories.make_user("admin")
    _member("seller", units=["downtown"])
    auth.login(admin)
    page = client.get("/admin/units/1/delete").get_data(as_text=True)
    assert "Delete the unit <bdi>downtown</bdi>?" in page
    assert "Its 1 member will leave it." in page
    assert 'name="confirmed" value="1"' in page
    response = client.post("/admin/units/1/delete", data={"confirmed": "1"})
    assert response.status_code == 303
    assert "Unit downtown deleted." in client.get("/admin/units").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Unit)) == 0


def test_delete_department_in_use_is_refused_with_the_count(client, auth, ctx):
    admin = factories.make_user("admin")
    _member("attendant", departments=["sales"])
    _member("seller", departments=["sales", "rent"])
    auth.login(admin)
    before = _counts()
    response = client.hx_post("/admin/departments/1/delete")
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<html" not in html
    assert "2 users belong to the department sales" in html
    db.session.expire_all()
    assert _counts() == before
    assert len(db.session.get(Department, 1).users) == 2

    # Without JavaScript: the same refusal as a flash on the list.
    plain = client.post("/admin/departments/1/delete")
    assert plain.status_code == 303
    assert "2 users belong" in client.get("/admin/departments").get_data(as_text=True)
    assert _counts() == before
    # The confirmation page says so up front and offers no delete button.
    confirm = client.get("/admin/departments/1/delete").get_data(as_text=True)
    assert "2 users belong" in confirm
    assert 'action="/admin/departments/1/delete"' not in confirm


def test_delete_department_in_use_is_refused_by_the_service(ctx):
    _member("attendant", departments=["sales"])
    from portal.errors import Conflict

    with pytest.raises(Conflict, match="1 user belongs"):
        org.delete_department(current_account(), 1)
    assert db.session.get(Department, 1) is not None


def test_delete_unused_department(client, auth, ctx):
    _structure()
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/departments/1/delete")
    assert response.status_code == 200
    assert "Department Sales deleted." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Department)) == 0


# --- Store flow switch -------------------------------------------------------


def test_store_flow_switch_on_the_units_page(client, auth, ctx):
    _structure()
    auth.login(factories.make_user("admin"))
    on = client.hx_post(
        "/admin/units/1/store-flow", data={"view": "units", "store_flow": "1"}
    )
    html = on.get_data(as_text=True)
    assert on.status_code == 200
    assert "<html" not in html and '<tr id="unit-1">' in html
    assert 'aria-pressed="true"' in html
    db.session.expire_all()
    assert db.session.get(Unit, 1).store_flow is True
    off = client.post(
        "/admin/units/1/store-flow", data={"view": "units", "store_flow": "0"}
    )
    assert off.status_code == 303 and off.headers["Location"] == "/admin/units"
    db.session.expire_all()
    assert db.session.get(Unit, 1).store_flow is False


def test_store_flow_switch_for_settings_managers_without_units_manage(
    client, auth, ctx
):
    _structure()
    auth.login(_custom_role_user("settings.manage"))
    # The units page row names the unit's people: not for this role.
    row = client.hx_post(
        "/admin/units/1/store-flow", data={"view": "units", "store_flow": "1"}
    )
    assert row.status_code == 403
    item = client.hx_post(
        "/admin/units/1/store-flow", data={"view": "settings", "store_flow": "1"}
    )
    html = item.get_data(as_text=True)
    assert item.status_code == 200
    assert html.strip().startswith('<li id="store-flow-1">')
    db.session.expire_all()
    assert db.session.get(Unit, 1).store_flow is True


# --- Other accounts, CSRF ----------------------------------------------------


def _other_account_records() -> dict[str, int]:
    other = Account(name="Other")
    db.session.add(other)
    db.session.flush()
    ensure_builtin_roles(other)
    ids = {}
    for model, key in ((Team, "teams"), (Unit, "units"), (Department, "departments")):
        row = model(account_id=other.id, key="theirs", name="Theirs")
        db.session.add(row)
        db.session.flush()
        ids[key] = row.id
    db.session.commit()
    return ids


@pytest.mark.parametrize("kind", ["teams", "units", "departments"])
def test_records_of_other_accounts_are_not_found(client, auth, ctx, kind):
    _structure()
    record_id = _other_account_records()[kind]
    auth.login(factories.make_user("admin"))
    base = f"/admin/{kind}/{record_id}"
    assert client.get(base + "/edit").status_code == 404
    assert client.hx_get(base).status_code == 404
    assert client.get(base + "/delete").status_code == 404
    assert client.post(base, data={"name": "Mine now"}).status_code == 404
    assert client.post(base + "/delete", data={"confirmed": "0"}).status_code == 404
    if kind == "units":
        flow = client.post(base + "/store-flow", data={"store_flow": "1"})
        assert flow.status_code == 404
    db.session.expire_all()
    names = {
        r.name for m in (Team, Unit, Department) for r in db.session.scalars(select(m))
    }
    assert "Mine now" not in names and "Theirs" in names


@pytest.mark.parametrize(
    "url",
    [
        "/admin/teams",
        "/admin/units/1",
        "/admin/departments/1/delete",
        "/admin/units/1/store-flow",
    ],
)
def test_post_without_csrf_token_is_refused(client, auth, ctx, url):
    _structure()
    auth.login(factories.make_user("admin"))
    before = _counts()
    response = client.post(
        url, data={"key": "x", "name": "X", "store_flow": "1"}, csrf=False
    )
    assert response.status_code == 400
    db.session.expire_all()
    assert _counts() == before
    assert db.session.get(Unit, 1).name == "Downtown"
    assert db.session.get(Unit, 1).store_flow is False


def test_delete_department_with_contacts_is_refused(ctx):
    from portal.errors import Conflict
    from portal.models import Contact

    contact = factories.make_contact(department="sales")
    department_id = contact.department_id
    with pytest.raises(Conflict, match="1 contact is in the department sales"):
        org.delete_department(current_account(), department_id)
    db.session.expire_all()
    assert db.session.get(Department, department_id) is not None
    assert db.session.get(Contact, contact.id).department_id == department_id
