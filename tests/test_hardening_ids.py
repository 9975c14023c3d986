"""Ids out of the databases' range: 404 in a URL, a field error in a form or
a query string, never a 500, on SQLite and PostgreSQL (issue 12, item 7)."""

from __future__ import annotations

import re
import tempfile

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal import create_app
from portal.extensions import db
from portal.ids import MAX_ID, parse_id
from portal.models import Contact, User
from tests import factories
from tests.conftest import Auth, PortalClient

# Just past PostgreSQL's integer, past SQLite's and psycopg's 64 bits, far past.
OUT_OF_RANGE = [str(MAX_ID + 1), str(2**63), str(10**20)]


def _int_routes() -> list[tuple[str, str]]:
    """(method, rule) of every route with an <int:...> part, from the url_map
    of an app built only to be read (parametrising happens before fixtures)."""
    instance = tempfile.mkdtemp(prefix="roleta-routes-")
    app = create_app(
        {
            "INSTANCE_PATH": instance,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/r.db",
        }
    )
    found = []
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


INT_ROUTES = _int_routes()


def test_the_walk_found_the_routes_of_the_issue() -> None:
    rules = {rule for _, rule in INT_ROUTES}
    assert "/contacts/<int:contact_id>" in rules
    assert "/contacts/<int:contact_id>/timeline" in rules
    assert "/admin/users/<int:user_id>/edit" in rules


@pytest.fixture
def admin(auth: Auth, ctx: None) -> User:
    user = factories.make_user("admin")
    assert auth.login(user).status_code == 303
    return user


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(("method", "rule"), INT_ROUTES)
def test_an_id_out_of_range_in_a_url_is_404(
    client: PortalClient, admin: User, method: str, rule: str, value: str
) -> None:
    url = re.sub(r"<int:\w+>", value, rule)
    # TESTING propagates exceptions: an overflow fails here, not as a 500.
    response = client.post(url) if method == "POST" else client.get(url)
    assert response.status_code == 404, (method, url)


@pytest.mark.parametrize(
    "url", ["/contacts/0", "/contacts/١", "/contacts/-1", "/contacts/2147483648"]
)
def test_zero_and_non_ascii_digits_are_no_id(
    client: PortalClient, admin: User, url: str
) -> None:
    assert client.get(url).status_code == 404


def test_an_id_in_range_still_opens_the_page(client: PortalClient, admin: User) -> None:
    contact = factories.make_contact(admin)
    assert client.get(f"/contacts/{contact.id}").status_code == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        (" 42 ", 42),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),
        (str(10**20), None),
        ("9" * 5000, None),  # int() itself refuses over 4300 digits
        ("0", None),
        ("-3", None),
        ("1e3", None),
        ("١٢", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_id(raw: str | None, expected: int | None) -> None:
    assert parse_id(raw) == expected


def _contacts() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Contact.id)))


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["department", "campaign", "owner"])
def test_new_contact_form_with_an_id_out_of_range_is_a_field_error(
    client: PortalClient, admin: User, field: str, value: str
) -> None:
    before = _contacts()
    form = {"name": "Ana", "phone": "11 91234-5678", field: value}
    response = client.hx_post("/contacts/new", data=form)
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert _contacts() == before


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["department", "campaign"])
def test_contact_edit_with_an_id_out_of_range_is_a_field_error(
    client: PortalClient, admin: User, field: str, value: str
) -> None:
    contact = factories.make_contact(admin, name="Old Name")
    form = {"name": "New Name", "phone": "11 91234-5678", field: value}
    response = client.hx_post(f"/contacts/{contact.id}/edit", data=form)
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).name == "Old Name"


@pytest.mark.parametrize("value", [*OUT_OF_RANGE, "abc"])
def test_assign_to_a_user_id_out_of_range_is_refused(
    client: PortalClient, admin: User, value: str
) -> None:
    contact = factories.make_contact(unassigned=True)
    response = client.hx_post(f"/contacts/{contact.id}/assign", data={"user_id": value})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).owner_id is None


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["contact_id", "user_id"])
def test_bulk_assign_with_an_id_out_of_range_is_a_field_error(
    client: PortalClient, admin: User, field: str, value: str
) -> None:
    contact = factories.make_contact(unassigned=True)
    form = {"contact_id": str(contact.id), "user_id": str(admin.id), field: value}
    response = client.hx_post("/contacts/bulk-assign", data=form)
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).owner_id is None


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["teams", "units", "departments"])
def test_user_forms_with_an_id_out_of_range_are_a_field_error(
    client: PortalClient, admin: User, field: str, value: str
) -> None:
    form = {"email": "new@example.com", "name": "New", "role": "attendant"}
    response = client.hx_post("/admin/users", data={**form, field: value})
    assert response.status_code == 422
    assert db.session.scalar(select(User).where(User.email == form["email"])) is None
    response = client.hx_post(f"/admin/users/{admin.id}", data={**form, field: value})
    assert response.status_code == 422


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(
    "url",
    [
        "/contacts?owner={v}",
        "/contacts?team={v}",
        "/contacts?unit={v}",
        "/contacts/counts?owner={v}",
        "/contacts/export.csv?owner={v}",
        "/contacts/{contact}/timeline?before={v}",
        "/contacts/{contact}/leads?before={v}",
        "/admin/users?after={v}",
        "/admin/roles/new?from={v}",
    ],
)
def test_an_id_out_of_range_in_a_query_string_is_no_500(
    client: PortalClient, admin: User, url: str, value: str
) -> None:
    contact = factories.make_contact(admin)
    response = client.get(url.format(v=value, contact=contact.id))
    assert response.status_code in (200, 404, 422), response.status_code


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_api_contacts_owner_out_of_range_is_422(
    app: Flask, client: PortalClient, ctx: None, value: str
) -> None:
    key = factories.make_api_key()
    response = client.get(
        f"/api/v1/contacts?owner={value}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 422
    assert "owner" in response.get_json()["fields"]


@pytest.mark.parametrize("limit", ["%C2%B2", "9" * 5000, "0" * 20 + "5"])
def test_a_list_limit_that_int_would_refuse_is_no_500(
    client: PortalClient, admin: User, limit: str
) -> None:
    # "²" passes str.isdigit() and fails int(); so does a 5000-digit number.
    response = client.get(f"/contacts?limit={limit}")
    assert response.status_code in (200, 422)


@pytest.mark.parametrize("limit", ["%C2%B2", "9" * 5000])
def test_an_api_limit_that_int_would_refuse_is_422(
    client: PortalClient, ctx: None, limit: str
) -> None:
    key = factories.make_api_key()
    response = client.get(
        f"/api/v1/contacts?limit={limit}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 422
    assert "limit" in response.get_json()["fields"]
