"""GET /api/v1/contacts: the key's account only, id order, keyset pages with
a signed cursor, the owner filter, and 422/400 naming the bad parameter."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.contacts.cursor import Cursor, encode_cursor
from portal.extensions import db
from portal.models import Account, Contact
from tests import factories

CONTACTS = "/api/v1/contacts"


@pytest.fixture
def key(ctx) -> str:
    return factories.make_api_key("contacts:read")


def get(client, key: str, **params):
    return client.get(
        CONTACTS, query_string=params, headers={"Authorization": f"Bearer {key}"}
    )


def test_items_carry_the_contract_fields_in_id_order(client, key):
    owner = factories.make_user("attendant", name="Olga")
    mine = factories.make_contact(
        owner=owner, name="Paula", phone="+55 11 91234-0000", email="p@example.com"
    )
    waiting = factories.make_contact(unassigned=True, name="Quim")
    response = get(client, key)
    assert response.status_code == 200
    body = response.get_json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == [mine.id, waiting.id]
    first = body["items"][0]
    assert set(first) >= {
        "id",
        "name",
        "phone",
        "email",
        "owner_id",
        "status",
        "origin",
        "created_at",
    }
    assert first["name"] == "Paula" and first["owner_id"] == owner.id
    assert first["phone"] == "+55 11 91234-0000"
    assert first["phone_e164"] == "+5511912340000"
    assert first["email"] == "p@example.com"
    assert first["status"] == "assigned" and first["origin"] == "manual"
    assert first["created_at"].endswith("Z")
    assert body["items"][1]["owner_id"] is None


def test_pages_follow_the_cursor_to_the_end(client, key):
    ids = [factories.make_contact(unassigned=True).id for _ in range(5)]
    seen = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = get(client, key, **params).get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    # A contact added meanwhile shows up at the end, not in the middle.
    newer = factories.make_contact(unassigned=True).id
    body = get(client, key, limit=5).get_json()
    assert body["next_cursor"] is not None
    rest = get(client, key, cursor=body["next_cursor"]).get_json()
    assert [item["id"] for item in rest["items"]] == [newer]


def test_owner_filters_by_user_or_unassigned(client, key):
    owner = factories.make_user("attendant")
    other = factories.make_user("attendant")
    owned = factories.make_contact(owner=owner)
    factories.make_contact(owner=other)
    free = factories.make_contact(unassigned=True)
    by_owner = get(client, key, owner=owner.id).get_json()["items"]
    assert [item["id"] for item in by_owner] == [owned.id]
    unassigned = get(client, key, owner="unassigned").get_json()["items"]
    assert [item["id"] for item in unassigned] == [free.id]


def test_only_the_keys_account_is_listed(client, key):
    mine = factories.make_contact(unassigned=True)
    other = Account(name="Other")
    db.session.add(other)
    db.session.commit()
    db.session.add(Contact(account_id=other.id, name="Theirs", name_search="theirs"))
    db.session.commit()
    items = get(client, key).get_json()["items"]
    assert [item["id"] for item in items] == [mine.id]
    assert db.session.scalar(select(Contact.id).where(Contact.name == "Theirs"))


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"owner": "someone"}, {"owner"}),
        ({"owner": "999999"}, {"owner"}),
        ({"owner": "-1"}, {"owner"}),
        ({"owner": str(2**31)}, {"owner"}),
        ({"owner": "0"}, {"owner"}),
        ({"limit": "0"}, {"limit"}),
        ({"limit": "501"}, {"limit"}),
        ({"limit": "ten"}, {"limit"}),
        ({"owner": "x", "limit": "-5"}, {"owner", "limit"}),
    ],
)
def test_bad_owner_or_limit_is_422_naming_it(client, key, params, fields):
    response = get(client, key, **params)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid" and set(body["fields"]) == fields


def test_limit_500_is_allowed(client, key):
    factories.make_contact(unassigned=True)
    assert get(client, key, limit=500).status_code == 200


def test_a_tampered_cursor_is_400_naming_it(client, key):
    for _ in range(3):
        factories.make_contact(unassigned=True)
    cursor = get(client, key, limit=1).get_json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    # A cursor of the web list (another sort) is not one of ours either.
    web_cursor = encode_cursor(Cursor(sort="newest", value=1, id=1))
    for bad in (tampered, "garbage", web_cursor, "x" * 300):
        response = get(client, key, cursor=bad)
        assert response.status_code == 400, bad
        body = response.get_json()
        assert body["error"] == "bad_request" and "cursor" in body["fields"]
