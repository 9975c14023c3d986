"""User administration: the list, create, inline edit, suspend, activation."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, func, select

from portal.auth.service import activation_url
from portal.extensions import db
from portal.mail import outbox_messages
from portal.models import Account, UnitMember, User, UserStatus
from portal.models.permissions import ROLE_PRESETS
from portal.org import structure
from portal.settings.service import current_account, ensure_builtin_roles
from portal.users.service import PAGE_SIZE, UserInput, create_user
from tests import factories

ROLES = [preset.key for preset in ROLE_PRESETS]


# --- helpers ---------------------------------------------------------------


def user_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(User.id)))


def reload(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def by_email(email: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def field_html(html: str, field: str) -> str:
    """The <label> or <fieldset> holding the input named `field`."""
    tags = ("fieldset",) if field in ("teams", "units", "departments") else ("label",)
    for tag in tags:
        pattern = (
            rf"<{tag}\b(?:(?!</{tag}>).)*?name=\"{field}\"(?:(?!</{tag}>).)*</{tag}>"
        )
        match = re.search(pattern, html, re.S)
        if match:
            return match.group(0)
    raise AssertionError(f"no field named {field!r} in the response")


def assert_error_next_to(html: str, field: str, message: str) -> None:
    block = field_html(html, field)
    assert 'class="field-error"' in block, block
    assert message in block, block


def new_user_form(**overrides) -> dict:
    form = {
        "email": "new.person@example.com",
        "name": "New Person",
        "role": "attendant",
        "language": "",
        "password": "",
        "is_restricted": "",
        "receives_web_leads": "",
        "creates_store_leads": "",
    }
    form.update(overrides)
    return form


def activation_paths(email: str) -> set[str]:
    """The activation links mailed to `email` (paths on the portal)."""
    paths = set()
    for mail in outbox_messages(to=email):
        match = re.search(r"http://portal\.test(/activate/\S+)", mail.get_content())
        assert match, mail.get_content()
        paths.add(match.group(1))
    return paths


@pytest.fixture
def admin(auth, ctx) -> User:
    user = factories.make_user("admin", email="boss@example.com", name="The Boss")
    assert auth.login(user).status_code == 303
    return user


# --- access ----------------------------------------------------------------

# (method, url, form) — {id} is a pending user's id.
ENDPOINTS = [
    ("GET", "/admin/users", None),
    ("GET", "/admin/users?q=target", None),
    ("POST", "/admin/users", new_user_form()),
    ("GET", "/admin/users/{id}/row", None),
    ("GET", "/admin/users/{id}/edit", None),
    (
        "POST",
        "/admin/users/{id}",
        {"email": "target@example.com", "name": "Renamed", "role": "attendant"},
    ),
    ("POST", "/admin/users/{id}/suspend", {}),
    ("POST", "/admin/users/{id}/reactivate", {}),
    ("POST", "/admin/users/{id}/resend-activation", {}),
    ("GET", "/admin/users/{id}/activation-link", None),
]
# What an admin gets from each, without htmx.
ADMIN_STATUS = [200, 200, 303, 303, 200, 303, 303, 303, 303, 200]


def _call(client, method, url, form, htmx=False):
    if method == "GET":
        return client.hx_get(url) if htmx else client.get(url)
    return client.hx_post(url, data=form) if htmx else client.post(url, data=form)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "form"), ENDPOINTS)
def test_only_user_managers_reach_the_users_pages(
    client, auth, ctx, role, method, url, form
):
    target = factories.make_user(
        "attendant", email="target@example.com", name="Target", password=None
    )
    nonce = target.activation_nonce
    caller = factories.make_user(role)
    auth.login(caller)
    before = user_count()

    response = _call(client, method, url.format(id=target.id), form)

    if role == "admin":
        expected = ADMIN_STATUS[ENDPOINTS.index((method, url, form))]
        assert response.status_code == expected
    else:
        assert response.status_code == 403
        # Refused means untouched.
        assert user_count() == before
        target = reload(target)
        assert target.name == "Target"
        assert target.status == UserStatus.ACTIVE
        assert target.activation_nonce == nonce


@pytest.mark.parametrize(("method", "url", "form"), ENDPOINTS)
def test_signed_out_visitors_are_sent_to_login(client, ctx, method, url, form):
    target = factories.make_user("attendant", password=None)
    url = url.format(id=target.id)

    page = _call(client, method, url, form)
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=")

    # htmx would swap a login page into a table row: 401 + a full navigation.
    fragment = _call(client, method, url, form, htmx=True)
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"].startswith("/login?next=")
    assert b"<html" not in fragment.data
    assert reload(target).status == UserStatus.ACTIVE


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", "/row"),
        ("GET", "/edit"),
        ("POST", ""),
        ("POST", "/suspend"),
        ("POST", "/reactivate"),
        ("POST", "/resend-activation"),
        ("GET", "/activation-link"),
    ],
)
def test_another_accounts_user_or_an_unknown_id_is_404(client, admin, method, suffix):
    other = Account(name="Elsewhere")
    db.session.add(other)
    db.session.flush()
    ensure_builtin_roles(other)
    db.session.commit()
    stranger = create_user(
        other,
        UserInput(email="stranger@example.com", name="Stranger", role_key="admin"),
    )
    form = {"email": "x@example.com", "name": "X", "role": "admin"}

    for user_id in (stranger.id, 999999):
        url = f"/admin/users/{user_id}{suffix}"
        assert _call(client, method, url, form).status_code == 404
        fragment = _call(client, method, url, form, htmx=True)
        assert fragment.status_code == 404
        assert b"<html" not in fragment.data

    stranger = reload(stranger)
    assert stranger.status == UserStatus.ACTIVE
    assert stranger.name == "Stranger"
    assert "stranger@example.com" not in client.get("/admin/users").get_data(
        as_text=True
    )


# --- the list --------------------------------------------------------------


def test_list_shows_users_with_role_structure_and_status(client, admin):
    factories.make_user(
        "attendant",
        name="Ana Attendant",
        email="ana@example.com",
        teams=["north"],
        departments=["sales"],
    )
    factories.make_user("seller", name="Sam Seller", units=["downtown"], password=None)
    suspended = factories.make_user("manager", name="Mia Manager")
    from portal.users.service import suspend_user

    suspend_user(suspended)

    html = client.get("/admin/users").get_data(as_text=True)
    assert "<html" in html
    ana = re.search(
        r'<tr id="user-\d+">(?:(?!</tr>).)*Ana Attendant.*?</tr>', html, re.S
    )
    assert ana
    row = ana.group(0)
    assert "ana@example.com" in row
    assert "Attendant" in row
    assert "north" in row and "sales" in row
    assert "Active" in row
    assert re.search(r"Sam Seller.*?downtown.*?Pending activation", html, re.S)
    assert re.search(r"Mia Manager.*?Suspended", html, re.S)


def test_list_is_ordered_by_name_ignoring_case(client, admin):
    for name in ("charlie", "Bravo", "alpha"):
        factories.make_user("attendant", name=name)
    html = client.hx_get("/admin/users").get_data(as_text=True)
    names = re.findall(r'<td data-label="Name"><bdi>([^<]*)</bdi></td>', html)
    assert names == ["alpha", "Bravo", "charlie", "The Boss"]


def test_filter_as_you_type_returns_only_matching_rows(client, admin):
    factories.make_user("attendant", name="Alice Smith", email="alice@example.com")
    factories.make_user("seller", name="Bob Jones", email="bob@example.com")
    factories.make_user("attendant", name="Carol", email="carol.alicea@example.com")

    response = client.hx_get("/admin/users?q=ALICE")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert "<tbody" not in html  # only the table body's rows
    assert "Alice Smith" in html
    assert "carol.alicea@example.com" in html  # matched by email
    assert "Bob Jones" not in html
    assert "The Boss" not in html

    nothing = client.hx_get("/admin/users?q=zzz").get_data(as_text=True)
    assert "No users match." in nothing

    # Wildcards are searched for, not obeyed.
    assert "Alice" not in client.hx_get("/admin/users?q=%25").get_data(as_text=True)


def test_filtered_url_without_htmx_renders_the_whole_page(client, admin):
    factories.make_user("attendant", name="Alice Smith")
    factories.make_user("seller", name="Bob Jones")
    html = client.get("/admin/users?q=alice").get_data(as_text=True)
    assert "<html" in html
    assert 'name="q" value="alice"' in html
    assert "Alice Smith" in html
    assert "Bob Jones" not in html


def test_filter_by_role_and_by_status(client, admin, run_jobs):
    factories.make_user("attendant", name="Active Attendant")
    factories.make_user("attendant", name="Pending Attendant", password=None)
    factories.make_user("seller", name="Some Seller")
    from portal.users.service import suspend_user

    suspend_user(factories.make_user("attendant", name="Suspended Attendant"))

    html = client.hx_get("/admin/users?role=attendant").get_data(as_text=True)
    assert "Active Attendant" in html and "Pending Attendant" in html
    assert "Some Seller" not in html and "The Boss" not in html

    pending = client.hx_get("/admin/users?status=pending").get_data(as_text=True)
    assert "Pending Attendant" in pending
    assert "Active Attendant" not in pending and "Suspended Attendant" not in pending

    suspended = client.hx_get("/admin/users?status=suspended").get_data(as_text=True)
    assert "Suspended Attendant" in suspended
    assert "Active Attendant" not in suspended

    active = client.hx_get("/admin/users?role=attendant&status=active").get_data(
        as_text=True
    )
    assert "Active Attendant" in active
    assert "Pending Attendant" not in active and "Suspended Attendant" not in active


def test_list_pages_by_100_with_a_more_link(client, admin):
    account = current_account()
    for n in range(PAGE_SIZE + 4):
        create_user(
            account,
            UserInput(
                email=f"p{n:03d}@example.com", name=f"Page {n:03d}", role_key="seller"
            ),
        )
    first = client.hx_get("/admin/users?q=page").get_data(as_text=True)
    assert first.count('<tr id="user-') == PAGE_SIZE
    more = re.search(r'<tr id="more-users".*?href="([^"]+)"', first, re.S)
    assert more
    more_url = more.group(1).replace("&amp;", "&")
    assert "q=page" in more_url

    rest = client.hx_get(more_url).get_data(as_text=True)
    names = re.findall(r'<td data-label="Name"><bdi>([^<]*)</bdi></td>', rest)
    assert names == ["Page 100", "Page 101", "Page 102", "Page 103"]
    assert "more-users" not in rest

    # The same link works as a plain page.
    page = client.get(more_url).get_data(as_text=True)
    assert "<html" in page and "Page 103" in page and "Page 099" not in page


def test_list_queries_do_not_grow_with_the_number_of_users(client, admin):
    def statements_for_list() -> int:
        seen = []

        def count(*_args):
            seen.append(1)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert client.hx_get("/admin/users").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen)

    for n in range(3):
        factories.make_user(
            "attendant", teams=[f"t{n}"], departments=[f"d{n}"], password=None
        )
    few = statements_for_list()
    for n in range(3, 15):
        factories.make_user(
            "seller", units=[f"u{n}"], departments=[f"d{n}"], password=None
        )
    many = statements_for_list()
    assert many == few


# --- create ----------------------------------------------------------------


def test_create_with_htmx_inserts_the_row_and_mails_the_link(client, admin, run_jobs):
    team = structure.get_or_create_team(current_account(), "north", "North")
    dept = structure.get_or_create_department(current_account(), "sales", "Sales")
    db.session.commit()
    form = new_user_form(language="pt_BR")
    response = client.hx_post(
        "/admin/users", data={**form, "teams": [team.id], "departments": [dept.id]}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html

    created = by_email("new.person@example.com")
    assert created is not None
    assert created.language == "pt_BR"
    assert [m.team.key for m in created.team_memberships] == ["north"]
    assert [d.key for d in created.departments] == ["sales"]
    # The new row goes to the top of the table, the flash to the flash region,
    # and the form comes back empty for the next one.
    partial = re.search(
        r'<hx-partial hx-target="#user-rows" hx-swap="afterbegin">(.*?)</hx-partial>',
        html,
        re.S,
    )
    assert partial and f'<tr id="user-{created.id}">' in partial.group(1)
    assert "New Person" in partial.group(1)
    assert re.search(
        r'<hx-partial hx-target="#flash"[^>]*>.*activation link was mailed', html, re.S
    )
    assert 'id="user-create"' in html
    assert 'value="new.person@example.com"' not in html

    assert run_jobs() == 1
    (path,) = activation_paths("new.person@example.com")
    assert client.get(path).status_code == 200


def test_create_takes_flags_from_the_role_unless_set(client, admin):
    client.hx_post("/admin/users", data=new_user_form(email="a@example.com"))
    defaulted = by_email("a@example.com")
    assert defaulted.is_restricted is True
    assert defaulted.receives_web_leads is True
    assert defaulted.creates_store_leads is False

    client.hx_post(
        "/admin/users",
        data=new_user_form(
            email="b@example.com", is_restricted="0", creates_store_leads="1"
        ),
    )
    chosen = by_email("b@example.com")
    assert chosen.is_restricted is False
    assert chosen.receives_web_leads is True
    assert chosen.creates_store_leads is True


def test_create_with_a_password_is_active_at_once(client, auth, admin, run_jobs):
    response = client.hx_post(
        "/admin/users", data=new_user_form(password="a long enough secret")
    )
    assert response.status_code == 200
    assert "was added." in response.get_data(as_text=True)
    assert run_jobs() == 0
    auth.logout()
    assert (
        auth.login("new.person@example.com", "a long enough secret").status_code == 303
    )


def test_create_without_javascript_redirects_back_with_a_flash(client, admin):
    response = client.post("/admin/users", data=new_user_form())
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/users"
    page = client.get("/admin/users").get_data(as_text=True)
    assert "New Person was added." in page
    assert by_email("new.person@example.com") is not None


def test_create_error_without_javascript_is_the_whole_page(client, admin):
    before = user_count()
    response = client.post("/admin/users", data=new_user_form(email=""))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html
    assert_error_next_to(html, "email", "Required.")
    assert 'value="New Person"' in html
    assert user_count() == before


# --- bad input, one test each; nothing half-written after any of them ---


def post_bad(client, **overrides):
    before = user_count()
    response = client.hx_post("/admin/users", data=new_user_form(**overrides))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert user_count() == before
    return html


def test_empty_email_is_refused(client, admin):
    html = post_bad(client, email="   ")
    assert_error_next_to(html, "email", "Required.")
    assert 'value="New Person"' in field_html(html, "name")  # typed values kept


def test_overlong_email_is_refused(client, admin):
    email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com"
    assert len(email) > 254
    html = post_bad(client, email=email)
    assert_error_next_to(html, "email", "Use at most 254 characters.")
    assert email in field_html(html, "email")


def test_duplicate_email_in_another_case_is_refused(client, admin):
    factories.make_user("attendant", email="taken@example.com")
    html = post_bad(client, email="  TAKEN@Example.COM ")
    assert_error_next_to(html, "email", "Another user already has this email.")


def test_invalid_email_is_refused(client, admin):
    html = post_bad(client, email="not an email")
    assert_error_next_to(html, "email", "Not a valid email address.")
    assert 'value="not an email"' in field_html(html, "email")


def test_empty_name_is_refused(client, admin):
    html = post_bad(client, name="  ")
    assert_error_next_to(html, "name", "Required.")
    assert 'value="new.person@example.com"' in field_html(html, "email")


def test_overlong_name_is_refused(client, admin):
    html = post_bad(client, name="N" * 201)
    assert_error_next_to(html, "name", "Use at most 200 characters.")


def test_unknown_role_is_refused(client, admin):
    html = post_bad(client, role="emperor")
    assert_error_next_to(html, "role", "Unknown role.")


def test_weak_password_is_refused(client, admin):
    html = post_bad(client, password="short")
    assert_error_next_to(html, "password", "Use at least 12 characters.")


def test_every_bad_field_is_named_at_once(client, admin):
    html = post_bad(client, email="", name="", role="emperor")
    assert_error_next_to(html, "email", "Required.")
    assert_error_next_to(html, "name", "Required.")
    assert_error_next_to(html, "role", "Unknown role.")


def test_coordinator_added_to_a_unit_is_refused_on_the_units_field(client, admin):
    unit = structure.get_or_create_unit(current_account(), "downtown", "Downtown")
    db.session.commit()
    memberships = db.session.scalar(select(func.count()).select_from(UnitMember))
    before = user_count()
    response = client.hx_post(
        "/admin/users", data={**new_user_form(role="coordinator"), "units": [unit.id]}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert_error_next_to(html, "units", "does not belong to units")
    assert "checked" in field_html(html, "units")  # the ticked unit stays ticked
    assert user_count() == before
    assert (
        db.session.scalar(select(func.count()).select_from(UnitMember)) == memberships
    )


def test_html_in_a_name_is_shown_as_text(client, admin):
    script = "<script>alert(1)</script>"
    response = client.hx_post("/admin/users", data=new_user_form(name=script))
    assert response.status_code == 200
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in response.get_data(as_text=True)
    assert script not in response.get_data(as_text=True)
    assert by_email("new.person@example.com").name == script  # stored as typed

    page = client.get("/admin/users").get_data(as_text=True)
    assert escaped in page and script not in page
    user = by_email("new.person@example.com")
    row = client.hx_get(f"/admin/users/{user.id}/row").get_data(as_text=True)
    assert escaped in row and script not in row
    edit = client.hx_get(f"/admin/users/{user.id}/edit").get_data(as_text=True)
    assert escaped in edit and script not in edit


def test_post_without_csrf_is_refused(client, admin):
    before = user_count()
    response = client.post("/admin/users", data=new_user_form(), csrf=False)
    assert response.status_code == 400
    assert user_count() == before
    target = factories.make_user("attendant")
    response = client.post(f"/admin/users/{target.id}/suspend", csrf=False)
    assert response.status_code == 400
    assert reload(target).status == UserStatus.ACTIVE


def test_tampered_membership_ids_are_refused(client, admin):
    html = post_bad(client, teams="abc")
    assert_error_next_to(html, "teams", "Pick from the list.")
    html = post_bad(client, departments="987654")
    assert_error_next_to(html, "departments", "Pick from the list.")


# --- inline edit -----------------------------------------------------------


def test_inline_edit_round_trip(client, admin):
    account = current_account()
    user = factories.make_user(
        "attendant", name="Old Name", email="old@example.com", teams=["north"]
    )
    south = structure.get_or_create_team(account, "south", "South")
    db.session.commit()

    form = client.hx_get(f"/admin/users/{user.id}/edit")
    html = form.get_data(as_text=True)
    assert form.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith(f'<tr id="user-{user.id}"')
    assert 'value="Old Name"' in html
    assert "checked" in field_html(html, "teams")

    saved = client.hx_post(
        f"/admin/users/{user.id}",
        data={
            "email": "New@Example.com",
            "name": "New Name",
            "role": "attendant",
            "language": "es",
            "time_zone": "America/Sao_Paulo",
            "teams": [south.id],
            "is_restricted": "0",
        },
    )
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200
    assert "<html" not in html
    assert f'<tr id="user-{user.id}">' in html
    assert "New Name" in html and "new@example.com" in html and "South" in html
    assert "New Name was saved." in html

    user = reload(user)
    assert (user.name, user.email, user.language, user.time_zone) == (
        "New Name",
        "new@example.com",
        "es",
        "America/Sao_Paulo",
    )
    assert [m.team.key for m in user.team_memberships] == ["south"]
    assert user.is_restricted is False
    assert user.receives_web_leads is True  # still the role's default

    cancel = client.hx_get(f"/admin/users/{user.id}/row")
    assert cancel.status_code == 200
    assert "<form" in cancel.get_data(as_text=True)  # the row's action buttons
    assert 'name="email"' not in cancel.get_data(as_text=True)


def test_edit_keeps_own_email_but_refuses_anothers(client, admin):
    factories.make_user("attendant", email="other@example.com")
    user = factories.make_user("attendant", email="me@example.com", name="Me")
    same = client.hx_post(
        f"/admin/users/{user.id}",
        data={"email": "ME@example.com", "name": "Me Too", "role": "attendant"},
    )
    assert same.status_code == 200
    assert reload(user).name == "Me Too"

    taken = client.hx_post(
        f"/admin/users/{user.id}",
        data={"email": "OTHER@example.com", "name": "Changed", "role": "attendant"},
    )
    html = taken.get_data(as_text=True)
    assert taken.status_code == 422
    assert html.lstrip().startswith(f'<tr id="user-{user.id}"')
    assert_error_next_to(html, "email", "Another user already has this email.")
    assert 'value="Changed"' in field_html(html, "name")
    user = reload(user)
    assert (user.email, user.name) == ("me@example.com", "Me Too")


def test_changing_role_revalidates_memberships(client, admin):
    user = factories.make_user("attendant", teams=["north"])
    (membership,) = user.team_memberships
    response = client.hx_post(
        f"/admin/users/{user.id}",
        data={
            "email": user.email,
            "name": user.name,
            "role": "seller",
            "teams": [membership.team_id],
        },
    )
    assert response.status_code == 422
    assert_error_next_to(response.get_data(as_text=True), "teams", "does not belong")
    user = reload(user)
    assert user.role.key == "attendant"
    assert [m.team.key for m in user.team_memberships] == ["north"]

    moved = client.hx_post(
        f"/admin/users/{user.id}",
        data={"email": user.email, "name": user.name, "role": "seller"},
    )
    assert moved.status_code == 200
    user = reload(user)
    assert user.role.key == "seller"
    assert user.team_memberships == []
    # Flags that were the old role's defaults follow the new role.
    assert user.receives_web_leads is False
    assert user.creates_store_leads is True


def test_edit_without_javascript(client, admin):
    user = factories.make_user("attendant", name="Plain")
    page = client.get(f"/admin/users/{user.id}/edit")
    assert page.status_code == 200
    assert "<html" in page.get_data(as_text=True)

    bad = client.post(
        f"/admin/users/{user.id}", data={"email": "", "name": "X", "role": "attendant"}
    )
    assert bad.status_code == 422
    assert "<html" in bad.get_data(as_text=True)
    assert_error_next_to(bad.get_data(as_text=True), "email", "Required.")

    good = client.post(
        f"/admin/users/{user.id}",
        data={"email": user.email, "name": "Plainer", "role": "attendant"},
    )
    assert good.status_code == 303
    assert reload(user).name == "Plainer"
    assert client.get(f"/admin/users/{user.id}/row").status_code == 303


def test_admin_cannot_take_away_their_own_user_management(client, admin):
    response = client.hx_post(
        f"/admin/users/{admin.id}",
        data={"email": admin.email, "name": admin.name, "role": "attendant"},
    )
    assert response.status_code == 422
    assert_error_next_to(response.get_data(as_text=True), "role", "your own right")
    assert reload(admin).role.key == "admin"


# --- suspend, reactivate, activation links --------------------------------


def test_suspension_signs_the_user_out_on_their_next_request(app, client, admin):
    user = factories.make_user("attendant", name="Soon Gone")
    their_browser = app.test_client()
    their_browser.post(
        "/login", data={"email": user.email, "password": factories.PASSWORD}
    )
    assert their_browser.get("/").status_code == 200

    response = client.hx_post(f"/admin/users/{user.id}/suspend")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert "Suspended" in html and "Reactivate" in html
    assert "signed out everywhere" in html

    assert their_browser.get("/").status_code == 302
    assert reload(user).status == UserStatus.SUSPENDED


def test_admin_cannot_suspend_themselves(client, admin):
    response = client.hx_post(f"/admin/users/{admin.id}/suspend")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "You cannot suspend yourself." in html
    assert f'<tr id="user-{admin.id}">' in html
    assert reload(admin).status == UserStatus.ACTIVE
    assert client.get("/admin/users").status_code == 200  # still signed in

    plain = client.post(f"/admin/users/{admin.id}/suspend")
    assert plain.status_code == 303
    assert "You cannot suspend yourself." in client.get("/admin/users").get_data(
        as_text=True
    )


def test_reactivate_lets_the_user_back_in(client, auth, admin):
    user = factories.make_user("attendant")
    client.hx_post(f"/admin/users/{user.id}/suspend")
    response = client.hx_post(f"/admin/users/{user.id}/reactivate")
    assert response.status_code == 200
    assert "can sign in again" in response.get_data(as_text=True)
    assert "Active" in response.get_data(as_text=True)
    assert reload(user).status == UserStatus.ACTIVE

    auth.logout()
    assert auth.login(user).status_code == 303


def test_resend_activation_kills_the_old_link(client, admin, run_jobs):
    user = factories.make_user("attendant", email="slow@example.com", password=None)
    run_jobs()
    (old,) = activation_paths("slow@example.com")

    response = client.hx_post(f"/admin/users/{user.id}/resend-activation")
    assert response.status_code == 200
    assert "previous one no longer works" in response.get_data(as_text=True)
    assert run_jobs() == 1
    (new,) = activation_paths("slow@example.com") - {old}

    assert client.get(old).status_code == 410
    assert client.get(new).status_code == 200


def test_resend_activation_is_refused_for_an_activated_user(client, admin, run_jobs):
    user = factories.make_user("attendant", name="Already In")
    response = client.hx_post(f"/admin/users/{user.id}/resend-activation")
    assert response.status_code == 422
    assert "Already In has already activated." in response.get_data(as_text=True)
    assert run_jobs() == 0
    assert reload(user).activation_nonce is None


def test_show_link_reveals_the_current_activation_link(client, admin):
    user = factories.make_user("attendant", password=None)
    response = client.hx_get(f"/admin/users/{user.id}/activation-link")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    # The token carries the second it was signed: the link shown is the one
    # for the user's current nonce, up to that time stamp.
    nonce = reload(user).activation_nonce
    link = _shown_link(html)
    assert f'value="{link}"' in html
    assert _unsigned(link) == _unsigned(activation_url(user.id, nonce))
    path = link.removeprefix("http://portal.test")
    assert client.get(path).status_code == 200

    page = client.get(f"/admin/users/{user.id}/activation-link")
    assert page.status_code == 200
    assert _unsigned(_shown_link(page.get_data(as_text=True))) == _unsigned(link)


def _shown_link(html: str) -> str:
    found = re.search(r'"(http://portal\.test/activate/[^"]+)"', html)
    assert found, "no activation link on the page"
    return found.group(1)


def _unsigned(link: str) -> str:
    """The link without its token's time stamp and signature: the address
    and the signed payload (user and nonce)."""
    return link.rsplit(".", 2)[0]


def test_show_link_is_404_when_mail_really_leaves(app, client, admin, monkeypatch):
    user = factories.make_user("attendant", password=None)
    monkeypatch.setitem(app.config, "MAIL_URL", "smtp://mail.example:25")
    assert client.get(f"/admin/users/{user.id}/activation-link").status_code == 404
    assert "Show link" not in client.get("/admin/users").get_data(as_text=True)


def test_show_link_is_404_for_an_activated_user(client, admin):
    user = factories.make_user("attendant")
    assert client.get(f"/admin/users/{user.id}/activation-link").status_code == 404


def test_an_unknown_time_zone_is_named_and_nothing_saved(client, admin):
    user = factories.make_user("attendant", name="Zoe Zone")
    response = client.hx_post(
        f"/admin/users/{user.id}",
        data={
            "email": user.email,
            "name": "Renamed",
            "role": "attendant",
            "time_zone": "Mars/Olympus_Mons",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="error-time_zone"' in html and "Unknown time zone." in html
    user = reload(user)
    assert (user.name, user.time_zone) == ("Zoe Zone", None)
