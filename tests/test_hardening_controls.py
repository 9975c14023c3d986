"""A control character (NUL, ...) in any form or query value: the same 422
naming the field on SQLite and PostgreSQL, nothing written (issue 12, item 7).

SQLite stores NUL in text and PostgreSQL refuses it; the check before every
view (portal/security.py) is what makes both answer alike."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, Department, Role, Team, Unit
from portal.security import first_field_with_control_character
from tests import factories
from tests.conftest import Auth, PortalClient

NUL = "\x00"


def snapshot() -> dict[str, list]:
    """Every row of every table, to show a refused request wrote nothing."""
    db.session.expire_all()
    rows = {}
    for table in db.metadata.sorted_tables:
        order = [column for column in table.primary_key.columns] or list(table.c)
        result = db.session.execute(select(table).order_by(*order))
        rows[table.name] = [tuple(map(repr, row)) for row in result]
    db.session.rollback()
    return rows


@pytest.fixture
def world(auth: Auth, ctx: None) -> dict:
    """An admin signed in, and one of each thing the forms change."""
    admin = factories.make_user("admin", teams=["north"], units=["downtown"])
    factories.make_user("attendant", departments=["sales"])
    contact = factories.make_contact(admin, name="Ana Souza")
    assert auth.login(admin).status_code == 303
    return {
        "admin": admin.id,
        "contact": contact.id,
        "team": db.session.scalar(select(Team.id)),
        "unit": db.session.scalar(select(Unit.id)),
        "department": db.session.scalar(select(Department.id)),
        "role": db.session.scalar(select(Role.id).where(Role.key == "attendant")),
    }


def contact_form(**overrides: str) -> dict[str, str]:
    return {"name": "Bia Lima", "phone": "11 91234-5678", "email": "", **overrides}


def user_form(**overrides: str) -> dict[str, str]:
    form = {"email": "new@example.com", "name": "New Person", "role": "attendant"}
    return {**form, **overrides}


# (url, form, the field that carries the NUL); {name} is an id from `world`.
FORM_POSTS = [
    ("/contacts/new", contact_form(name=f"Bia{NUL}Lima"), "name"),
    ("/contacts/new", contact_form(tags=f"vip{NUL}"), "tags"),
    (
        "/contacts/new",
        contact_form(custom_key="budget", custom_value=f"5{NUL}00k"),
        "custom_value",
    ),
    ("/contacts/{contact}/edit", contact_form(name=f"Ana{NUL}"), "name"),
    ("/contacts/{contact}/history", {"kind": "note", "body": f"call{NUL}"}, "body"),
    (
        "/contacts/{contact}/status",
        {"status": "lost", "reason": f"price{NUL}"},
        "reason",
    ),
    ("/contacts/{contact}/assign", {"user_id": f"{NUL}"}, "user_id"),
    ("/contacts/saved-views", {"name": f"mine{NUL}", "query": "q=a"}, "name"),
    ("/admin/users", user_form(name=f"New{NUL}Person"), "name"),
    ("/admin/users/{admin}", user_form(name=f"Boss{NUL}"), "name"),
    ("/admin/teams", {"key": "south", "name": f"South{NUL}"}, "name"),
    ("/admin/teams/{team}", {"name": f"North{NUL}"}, "name"),
    ("/admin/units", {"key": f"up{NUL}town", "name": "Uptown"}, "key"),
    ("/admin/units/{unit}", {"name": f"Down{NUL}town"}, "name"),
    ("/admin/departments", {"key": "support", "name": "Sup\x07port"}, "name"),
    ("/admin/departments/{department}", {"name": "Sales\x1b"}, "name"),
    (
        "/admin/departments/{department}/hours",
        {"timezone": f"UTC{NUL}", "mon_start": "09:00", "mon_end": "18:00"},
        "timezone",
    ),
    ("/admin/roles", {"key": "coach", "name": f"Coach{NUL}"}, "name"),
    ("/admin/roles/{role}", {"key": "attendant", "name": f"Agent{NUL}"}, "name"),
    ("/admin/api-keys", {"name": f"Site{NUL}", "scopes": "leads:write"}, "name"),
    (
        "/admin/settings",
        {"roulette.offer_timeout": f"60{NUL}"},
        "roulette.offer_timeout",
    ),
    ("/presence", {"available": f"1{NUL}"}, "available"),
    ("/language", {"language": f"es{NUL}", "next": "/"}, "language"),
    ("/login", {"email": f"admin{NUL}@example.com", "password": "x"}, "email"),
]


def _ids(cases: list) -> list[str]:
    return [f"{url} {field}" for url, _, field in cases]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
@pytest.mark.parametrize(("url", "form", "field"), FORM_POSTS, ids=_ids(FORM_POSTS))
def test_a_control_character_in_a_form_is_422_naming_the_field(
    client: PortalClient, world: dict, url: str, form: dict, field: str, htmx: bool
) -> None:
    before = snapshot()
    post = client.hx_post if htmx else client.post
    response = post(url.format(**world), data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f"The field “{field}” contains a control character" in html
    assert ("<html" in html) is not htmx
    if htmx:
        assert response.headers["HX-Retarget"] == "#flash"
    assert snapshot() == before


def test_a_control_character_in_an_uploaded_file_name_is_refused(
    client: PortalClient, world: dict
) -> None:
    before = snapshot()
    data = {"file": (io.BytesIO(b"Name,Phone\nAna,11912345678\n"), f"a{NUL}b.csv")}
    response = client.post(
        "/contacts/import", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "The field “file” contains a control character" in response.text
    response.close()
    assert snapshot() == before


def test_tab_and_line_breaks_are_still_text(client: PortalClient, world: dict) -> None:
    body = "first line\r\nsecond\tline"
    response = client.hx_post(
        f"/contacts/{world['contact']}/history", data={"kind": "note", "body": body}
    )
    assert response.status_code == 200


def test_a_control_character_in_a_field_name_is_refused(
    client: PortalClient, world: dict
) -> None:
    before = snapshot()
    form = {**contact_form(), f"na{NUL}me": "x"}
    response = client.hx_post("/contacts/new", data=form)
    assert response.status_code == 422
    assert "The field “na\N{REPLACEMENT CHARACTER}me”" in response.get_data(
        as_text=True
    )
    assert snapshot() == before


QUERIES = [
    ("/contacts?q=a%00b", "q"),
    ("/contacts?status=new%00", "status"),
    ("/contacts/counts?q=%00", "q"),
    ("/contacts/export.csv?q=%00", "q"),
    ("/contacts/matches?phone=11%00912345678", "phone"),
    ("/contacts/matches?email=a%00@example.com", "email"),
    ("/contacts/{contact}/timeline?before=1%00", "before"),
    ("/admin/users?q=%00", "q"),
    ("/admin/teams?q=%00", "q"),
    ("/admin/roles?q=%00", "q"),
    ("/login?next=/%00", "next"),
]


@pytest.mark.parametrize(("url", "field"), QUERIES, ids=[u for u, _ in QUERIES])
def test_a_control_character_in_a_query_string_is_422_not_500(
    client: PortalClient, world: dict, url: str, field: str
) -> None:
    response = client.get(url.format(**world))
    assert response.status_code == 422
    assert f"The field “{field}”" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["cursor=%00", "owner=%00", "limit=1%00"])
def test_api_query_with_a_control_character_is_json_422(
    client: PortalClient, ctx: None, query: str
) -> None:
    key = factories.make_api_key()
    response = client.get(
        f"/api/v1/contacts?{query}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid"
    assert list(body["fields"]) == [query.split("=")[0]]


def test_the_api_keeps_its_own_refusal_of_nul_in_json(
    client: PortalClient, ctx: None
) -> None:
    key = factories.make_api_key()
    response = client.post(
        "/api/v1/leads",
        json={"name": f"Ana{NUL}", "phone": "+55 11 91234-5678"},
        headers={"Authorization": f"Bearer {key}"},
        csrf=False,
    )
    assert response.status_code == 422
    assert "name" in response.get_json()["fields"]
    assert db.session.scalar(select(func.count(Contact.id))) == 0


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("a", "ok"), ("b", "tab\tcr\rlf\n")], None),
        ([("a", "ok"), ("b", "x\x00"), ("c", "\x01")], "b"),
        ([("a", "\x7f é ü 中")], None),
        ([("a", "\x1f")], "a"),
    ],
)
def test_first_field_with_control_character(pairs: list, expected: str | None) -> None:
    assert first_field_with_control_character(pairs) == expected
