"""POST /api/v1/leads and GET /api/v1/leads/<id> (CONTRACT "Lead intake API"):
every error code, validation naming each field, matching of returning
customers, idempotency, routing, and reading a lead back. Real database,
real Redis, real roulette."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, func, select

from portal.extensions import db
from portal.models import Account, Campaign, Contact, Lead, Offer
from portal.org import structure
from portal.roulette import decisions
from portal.settings.service import current_account
from tests import factories

LEADS = "/api/v1/leads"
EXAMPLE = {
    "name": "Ana Souza",
    "phone": "+55 11 91234-5678",
    "email": "ana@example.com",
    "department": "sales",
    "source": "website",
    "campaign": "black-friday",
    "message": "Interested in the 2-bedroom",
    "external_id": "form-8841",
    "custom": {"budget": "500k"},
}


@pytest.fixture
def key(ctx) -> str:
    return factories.make_api_key()


@pytest.fixture
def catalog(ctx) -> None:
    """The department and campaign the CONTRACT's example names."""
    account = current_account()
    structure.get_or_create_department(account, "sales")
    db.session.add(Campaign(account_id=account.id, key="black-friday", name="BF"))
    db.session.commit()


def post(client, key: str, body, **kwargs):
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    if isinstance(body, (dict, list)) or body is None:
        return client.post(LEADS, json=body, headers=headers, csrf=False, **kwargs)
    return client.post(
        LEADS,
        data=body,
        headers=headers,
        content_type=kwargs.pop("content_type", "application/json"),
        csrf=False,
        **kwargs,
    )


def count(model) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model))


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error", "message", "fields"}, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# ----------------------------------------------------------------- creating


def test_the_contracts_example_creates_a_contact_and_a_queued_lead(
    client, key, catalog
):
    response = post(client, key, EXAMPLE)
    assert response.status_code == 201
    body = response.get_json()
    assert body == {
        "id": body["id"],
        "contact_id": body["contact_id"],
        "state": "queued",
        "created": True,
    }
    assert response.headers["Location"] == f"/api/v1/leads/{body['id']}"
    db.session.remove()
    lead = db.session.get(Lead, body["id"])
    contact = db.session.get(Contact, body["contact_id"])
    account = current_account()
    sales = structure.get_or_create_department(account, "sales")
    campaign = db.session.scalar(select(Campaign))
    assert (lead.origin, lead.source, lead.state) == ("web", "website", "queued")
    assert lead.department_id == sales.id and lead.campaign_id == campaign.id
    assert lead.message == "Interested in the 2-bedroom"
    assert lead.external_id == "form-8841" and lead.custom == {"budget": "500k"}
    assert lead.contact_id == contact.id and lead.account_id == account.id
    assert contact.name == "Ana Souza" and contact.origin == "web"
    assert contact.owner_id is None and contact.created_by_id is None
    assert contact.status == "new" and contact.department_id == sales.id
    assert contact.phone_e164 == "+5511912345678"
    assert contact.email_normalized == "ana@example.com"


def test_only_a_name_and_a_phone_or_an_email_are_required(client, key):
    by_phone = post(client, key, {"name": "Bia", "phone": "11 3456-7890"})
    assert by_phone.status_code == 201
    by_email = post(client, key, {"name": "Caio", "email": "CAIO@Example.com"})
    assert by_email.status_code == 201
    assert count(Lead) == 2 and count(Contact) == 2
    lead = db.session.get(Lead, by_email.get_json()["id"])
    assert lead.department_id is None and lead.external_id is None
    assert lead.custom == {}


def test_custom_keeps_scalar_types(client, key):
    custom = {"rooms": 2, "budget": 500000.5, "financing": True, "notes": None}
    response = post(client, key, {"name": "Duda", "email": "d@x.io", "custom": custom})
    assert response.status_code == 201
    assert db.session.get(Lead, response.get_json()["id"]).custom == custom


# ------------------------------------------------------- returning customers


def test_a_returning_customer_by_phone_in_another_format_gets_a_new_lead(client, key):
    first = post(client, key, {"name": "Ana", "phone": "+55 11 91234-5678"})
    again = post(client, key, {"name": "Ana S.", "phone": "(11) 91234-5678"})
    assert first.status_code == again.status_code == 201
    assert again.get_json()["contact_id"] == first.get_json()["contact_id"]
    assert again.get_json()["id"] != first.get_json()["id"]
    assert count(Contact) == 1 and count(Lead) == 2
    # The contact keeps its name, and is active as of the new lead.
    contact = db.session.get(Contact, first.get_json()["contact_id"])
    assert contact.name == "Ana"
    assert contact.last_activity_at == (
        db.session.get(Lead, again.get_json()["id"]).created_at
    )


def test_a_returning_customer_by_email_in_another_case_gets_a_new_lead(client, key):
    first = post(client, key, {"name": "Ana", "email": "ana.souza@example.com"})
    again = post(
        client, key, {"name": "Ana", "email": "  Ana.Souza@EXAMPLE.com ", "phone": ""}
    )
    assert again.status_code == 201
    assert again.get_json()["contact_id"] == first.get_json()["contact_id"]
    assert count(Contact) == 1 and count(Lead) == 2


def test_a_contact_entered_by_hand_is_matched_and_keeps_its_owner(client, key):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(
        owner=owner, phone="+55 21 99876-5432", email="carla@example.com"
    )
    response = post(client, key, {"name": "Carla", "phone": "21 99876 5432"})
    assert response.status_code == 201
    assert response.get_json()["contact_id"] == contact.id
    db.session.remove()
    assert db.session.get(Contact, contact.id).owner_id == owner.id
    assert count(Contact) == 1


def test_a_phone_and_an_email_of_two_contacts_go_to_the_older(client, key):
    older = post(client, key, {"name": "Ana", "email": "ana@example.com"})
    newer = post(client, key, {"name": "Bia", "phone": "+55 11 91234-5678"})
    for body in (
        {"name": "?", "phone": "11 91234-5678", "email": "ana@example.com"},
        {"name": "?", "phone": "+55 11 99999-0000", "email": "ana@example.com"},
    ):
        response = post(client, key, body)
        assert response.get_json()["contact_id"] == older.get_json()["contact_id"]
    by_phone = post(client, key, {"name": "?", "phone": "11 91234-5678"})
    assert by_phone.get_json()["contact_id"] == newer.get_json()["contact_id"]
    assert count(Contact) == 2 and count(Lead) == 5


@pytest.mark.parametrize("returning", [False, True])
def test_an_intake_reads_once_then_writes_once(client, key, returning):
    # After the key: one read finds the department, the external_id's lead
    # and the contact; then the contact (when new) and the lead are written.
    # On PostgreSQL that write is one statement, and nothing runs inside a
    # transaction, so no BEGIN and COMMIT round trips.
    structure.get_or_create_department(current_account(), "sales")
    db.session.commit()
    assert post(client, key, {"name": "Ana", "phone": "11 91234-5678"}).status_code
    db.session.remove()
    phone = "11 91234-5678" if returning else "11 3456-7890"
    body = {"name": "X", "phone": phone, "department": "sales", "external_id": "e1"}
    run: list[tuple[str, bool | None]] = []

    def record(conn, cursor, statement, *args) -> None:
        dbapi = conn.connection.dbapi_connection
        run.append(
            (statement.split(None, 1)[0].upper(), getattr(dbapi, "autocommit", None))
        )

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = post(client, key, body)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 201
    verbs = [verb for verb, _autocommit in run]
    if db.engine.dialect.name == "postgresql":
        assert verbs == ["SELECT", "SELECT", "WITH"]
        assert {autocommit for _verb, autocommit in run} == {True}
    else:
        first_write = "UPDATE" if returning else "INSERT"
        assert verbs == ["SELECT", "SELECT", first_write, "INSERT"]
    lead = db.session.get(Lead, response.get_json()["id"])
    assert lead.external_id == "e1" and lead.department_id is not None
    assert count(Contact) == (1 if returning else 2) and count(Lead) == 2


# ---------------------------------------------------------------- idempotency


def test_the_same_external_id_again_answers_200_with_the_same_ids(client, key):
    body = {"name": "Eva", "email": "eva@example.com", "external_id": "f-1"}
    first = post(client, key, body)
    assert first.status_code == 201
    # Even with different content, the external_id decides.
    second = post(client, key, {**body, "email": "other@example.com", "name": "X"})
    assert second.status_code == 200
    assert second.get_json() == {**first.get_json(), "created": False}
    assert count(Lead) == 1 and count(Contact) == 1
    # Another external_id is another lead (of the same contact).
    third = post(client, key, {**body, "external_id": "f-2"})
    assert third.status_code == 201
    assert third.get_json()["contact_id"] == first.get_json()["contact_id"]


def test_an_invalid_replay_is_still_invalid(client, key):
    body = {"name": "Eva", "email": "eva@example.com", "external_id": "f-1"}
    assert post(client, key, body).status_code == 201
    assert post(client, key, {**body, "email": "nope"}).status_code == 422


def test_no_second_offer_for_a_replayed_lead(client, key):
    factories.enable_roulette()
    agent = factories.make_user("attendant")
    factories.go_online(agent)
    body = {"name": "Fred", "email": "fred@example.com", "external_id": "x-9"}
    first = post(client, key, body)
    assert first.get_json()["state"] == "offered"
    decisions.decline(agent, db.session.scalar(select(Offer.id)))
    offers = count(Offer)  # the decline may have started the next round
    second = post(client, key, body)
    assert second.status_code == 200
    assert second.get_json()["created"] is False
    assert second.get_json()["id"] == first.get_json()["id"]
    assert count(Offer) == offers  # the replay routed nothing


# -------------------------------------------------------------------- routing


def test_with_the_roulette_on_the_online_agent_gets_the_offer(client, key):
    factories.enable_roulette()
    agent = factories.make_user("attendant")
    agent_id = agent.id  # the session is removed below
    factories.go_online(agent)
    response = post(client, key, {"name": "Gil", "phone": "+55 11 98888-7777"})
    assert response.status_code == 201
    assert response.get_json()["state"] == "offered"
    db.session.remove()
    offer = db.session.scalar(select(Offer))
    assert offer.agent_id == agent_id and offer.state == "pending"
    assert offer.lead_id == response.get_json()["id"]
    assert db.session.get(Lead, offer.lead_id).state == "offered"


def test_with_the_roulette_on_and_nobody_online_the_lead_waits(client, key):
    factories.enable_roulette()
    factories.make_user("attendant")  # offline
    response = post(client, key, {"name": "Hugo", "email": "hugo@example.com"})
    assert response.get_json()["state"] == "queued"
    assert count(Offer) == 0


def test_with_the_roulette_off_nobody_is_offered_the_lead(client, key):
    agent = factories.make_user("attendant")
    factories.go_online(agent)
    response = post(client, key, {"name": "Iris", "email": "iris@example.com"})
    assert response.get_json()["state"] == "queued"
    assert count(Offer) == 0


def test_the_lead_goes_to_its_departments_agent(client, key):
    factories.enable_roulette()
    rentals = factories.make_user("attendant", departments=["rentals"])
    sales = factories.make_user("attendant", departments=["sales"])
    factories.go_online(rentals)
    factories.go_online(sales)
    response = post(
        client, key, {"name": "Jo", "email": "jo@example.com", "department": "sales"}
    )
    assert response.get_json()["state"] == "offered"
    assert db.session.scalar(select(Offer.agent_id)) == sales.id


# ----------------------------------------------------------------- errors


def test_415_unless_the_body_is_declared_json(client, key):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Authorization": f"Bearer {key}"}
        kwargs = {"content_type": content_type} if content_type else {}
        response = client.post(
            LEADS, data='{"name": "A"}', headers=headers, csrf=False, **kwargs
        )
        assert response.status_code == 415, content_type
        assert error_of(response)["error"] == "unsupported_media_type"
    charset = post(
        client,
        key,
        json.dumps({"name": "A", "email": "a@b.co"}),
        content_type="application/json; charset=utf-8",
    )
    assert charset.status_code == 201


def _padded(size: int) -> bytes:
    """A valid lead body of exactly `size` bytes."""
    body = {"name": "Big", "email": "big@example.com", "custom": {}}
    base = len(json.dumps(body).encode())
    filler = 1400  # custom holds at most 50 fields
    fields = {}
    n = 0
    while base + sum(len(json.dumps({k: v})) for k, v in fields.items()) < size:
        fields[f"k{n:02d}"] = "x" * filler
        n += 1
    body["custom"] = fields
    raw = json.dumps(body, separators=(",", ":")).encode()
    # Trim the last value to land exactly on `size`.
    over = len(raw) - size
    last = f"k{n - 1:02d}"
    fields[last] = "x" * (filler - over)
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) == size, len(raw)
    return raw


def test_413_for_a_body_over_64_kib_by_content_length(client, key):
    at_limit = post(client, key, _padded(64 * 1024))
    assert at_limit.status_code == 201
    over = post(client, key, _padded(64 * 1024 + 1))
    assert over.status_code == 413
    assert error_of(over)["error"] == "too_large"
    assert count(Lead) == 1


def test_413_when_the_length_is_not_declared(client, key):
    """A chunked body (no Content-Length) is counted while it is read."""
    import io

    def streamed(raw: bytes):
        return client.post(
            LEADS,
            input_stream=io.BytesIO(raw),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
            environ_overrides={"wsgi.input_terminated": True},
            csrf=False,
        )

    over = streamed(_padded(64 * 1024 + 1))
    assert over.status_code == 413
    assert error_of(over)["error"] == "too_large"
    small = streamed(json.dumps({"name": "Li", "email": "li@example.com"}).encode())
    assert small.status_code == 201


def test_413_when_the_declared_length_overstates_a_small_body(client, key):
    response = post(
        client,
        key,
        json.dumps({"name": "A", "email": "a@b.co"}),
        environ_overrides={"CONTENT_LENGTH": str(10 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert count(Lead) == 0


def test_an_understated_length_reads_only_what_it_declares(client, key):
    raw = json.dumps({"name": "A", "email": "a@b.co"}).encode()
    response = post(
        client, key, raw, environ_overrides={"CONTENT_LENGTH": str(len(raw) - 5)}
    )
    assert response.status_code == 400
    assert error_of(response)["error"] == "invalid_json"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"name": "A",}',
        b"[]",
        b'"a lead"',
        b"42",
        b"null",
        b'{"name": "A", "custom": {"n": NaN}}',
        b'{"name": "A", "custom": {"n": 1e999}}',
        b'{"name": "\xff\xfe"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_400_invalid_json_for_anything_but_a_json_object(client, key, raw):
    response = post(client, key, raw)
    assert response.status_code == 400
    assert error_of(response)["error"] == "invalid_json"
    assert count(Lead) == 0


INVALID = [
    ({"email": "a@b.co"}, "name"),
    ({"name": "", "email": "a@b.co"}, "name"),
    ({"name": "   ", "email": "a@b.co"}, "name"),
    ({"name": "x" * 201, "email": "a@b.co"}, "name"),
    ({"name": 42, "email": "a@b.co"}, "name"),
    ({"name": None, "email": "a@b.co"}, "name"),
    ({"name": "A", "phone": "abc"}, "phone"),
    ({"name": "A", "phone": "12"}, "phone"),
    ({"name": "A", "phone": 5511912345678}, "phone"),
    ({"name": "A", "email": "not an email"}, "email"),
    ({"name": "A", "email": "a@b.co", "department": "nowhere"}, "department"),
    ({"name": "A", "email": "a@b.co", "campaign": "nothing"}, "campaign"),
    ({"name": "A", "email": "a@b.co", "message": "m" * 5001}, "message"),
    ({"name": "A", "email": "a@b.co", "external_id": "e" * 101}, "external_id"),
    ({"name": "A", "email": "a@b.co", "source": "s" * 101}, "source"),
    ({"name": "A", "email": "a@b.co", "custom": []}, "custom"),
    ({"name": "A", "email": "a@b.co", "custom": {"a": {"b": 1}}}, "custom"),
    ({"name": "A", "email": "a@b.co", "custom": {"a": [1]}}, "custom"),
    ({"name": "A", "email": "a@b.co", "custom": {"k" * 101: 1}}, "custom"),
    (
        {"name": "A", "email": "a@b.co", "custom": {f"k{i}": i for i in range(51)}},
        "custom",
    ),
    ({"name": "A", "email": "a@b.co", "owner_id": 1}, "owner_id"),
    ({"name": "A\x00", "email": "a@b.co"}, "name"),
    ({"name": "A", "email": "a@b.co", "message": "hi\x00"}, "message"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_422_names_the_bad_field(client, key, body, field):
    response = post(client, key, body)
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error["error"] == "invalid"
    assert field in error["fields"], error
    assert isinstance(error["fields"][field], str) and error["fields"][field]
    assert count(Lead) == 0 and count(Contact) == 0


def test_422_names_each_bad_field_at_once(client, key):
    response = post(
        client,
        key,
        {
            "name": "",
            "phone": "not a phone",
            "email": "nor an email",
            "department": "nowhere",
            "campaign": "nothing",
            "message": "m" * 5001,
            "external_id": "e" * 101,
            "custom": {"a": {"nested": True}},
            "colour": "blue",
        },
    )
    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {
        "name",
        "phone",
        "email",
        "department",
        "campaign",
        "message",
        "external_id",
        "custom",
        "colour",
    }
    assert fields["colour"] == "Unknown field."
    assert fields["name"] == "Required."
    assert fields["email"] == "Not a valid email address."


def test_422_without_phone_and_email_names_both(client, key):
    response = post(client, key, {"name": "A", "phone": " ", "email": None})
    fields = error_of(response)["fields"]
    assert response.status_code == 422
    assert set(fields) == {"phone", "email"}


def test_a_department_of_another_account_is_unknown(client, key):
    other = Account(name="Other")
    db.session.add(other)
    db.session.commit()
    structure.get_or_create_department(other, "elsewhere")
    db.session.commit()
    response = post(
        client, key, {"name": "A", "email": "a@b.co", "department": "elsewhere"}
    )
    assert response.status_code == 422
    assert "department" in error_of(response)["fields"]


def test_401_comes_before_any_look_at_the_body(client, key):
    response = client.post(
        LEADS, data="not json", content_type="text/plain", csrf=False
    )
    assert response.status_code == 401
    assert error_of(response)["error"] == "unauthorized"


def test_api_routes_answer_json_for_405(client, key):
    response = client.delete(LEADS, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 405
    assert error_of(response)["error"] == "method_not_allowed"


# ---------------------------------------------------------------- reading


def test_get_lead_shows_its_offers_and_owner_once_accepted(client, key):
    factories.enable_roulette()
    first = factories.make_user("attendant", name="Agent One")
    second = factories.make_user("attendant", name="Agent Two")
    factories.go_online(first)
    created = post(client, key, {"name": "Kai", "email": "kai@example.com"}).get_json()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{LEADS}/{created['id']}"

    offered = client.get(url, headers=headers).get_json()
    assert offered["id"] == created["id"]
    assert offered["contact_id"] == created["contact_id"]
    assert offered["state"] == "offered" and offered["owner"] is None
    [offer] = offered["offers"]
    assert offer["agent_id"] == first.id and offer["state"] == "pending"
    assert offer["offered_at"].endswith("Z") and offer["decided_at"] is None

    factories.go_online(second)
    decisions.decline(first, db.session.scalar(select(Offer.id)))
    second_offer = db.session.scalar(
        select(Offer.id).where(Offer.agent_id == second.id)
    )
    decisions.accept(second, second_offer)

    taken = client.get(url, headers=headers).get_json()
    assert taken["state"] == "assigned"
    assert taken["owner"] == {"id": second.id, "name": "Agent Two"}
    assert [(o["agent_id"], o["state"]) for o in taken["offers"]] == [
        (first.id, "declined"),
        (second.id, "accepted"),
    ]
    for item in taken["offers"]:
        assert item["decided_at"].endswith("Z")
        assert item["decided_at"] >= item["offered_at"]


def test_get_lead_of_another_account_or_none_is_404(client, key):
    other = Account(name="Other")
    db.session.add(other)
    db.session.commit()
    contact = Contact(
        account_id=other.id, name="Theirs", name_search="theirs", origin="web"
    )
    db.session.add(contact)
    db.session.flush()
    theirs = Lead(account_id=other.id, contact_id=contact.id, state="queued")
    db.session.add(theirs)
    db.session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    urls = (
        f"{LEADS}/{theirs.id}",
        f"{LEADS}/999999",
        f"{LEADS}/abc",
        f"{LEADS}/{2**31}",  # past PostgreSQL's integer: no row, not an error
        f"{LEADS}/0",
    )
    for url in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 404, url
        assert error_of(response)["error"] == "not_found"
