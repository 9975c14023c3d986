"""Creating a contact by hand: owner rules, the match check, bad input.

The match check tells what the creator may know: a contact they may see by
name and link, any other only by whom to ask, never its details.
"""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import AssignmentLog, Contact, HistoryEntry
from tests import factories

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
VALID = {"name": "Nina Nova", "phone": "+55 11 91234-5678", "email": ""}


def colleague(role: str, **kwargs):
    """A user who never signs in here: no password, so no slow hashing."""
    return factories.make_user(role, password=None, **kwargs)


def counts() -> tuple[int, int, int]:
    return tuple(
        db.session.scalar(db.select(db.func.count()).select_from(model))
        for model in (Contact, HistoryEntry, AssignmentLog)
    )


def only_contact() -> Contact:
    db.session.expire_all()
    (contact,) = db.session.scalars(db.select(Contact))
    return contact


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", 200),
        ("coordinator", 200),
        ("manager", 200),
        ("attendant", 200),
        ("seller", 200),
        ("reception", 200),
        ("callcenter", 403),
        ("media", 403),
        ("ranking", 403),
    ],
)
def test_who_may_create(client, auth, ctx, role, expected):
    auth.login(factories.make_user(role))
    assert client.get("/contacts/new").status_code == expected
    assert client.hx_get("/contacts/matches?phone=11912345678").status_code == expected
    response = client.hx_post("/contacts/new", data=VALID)
    assert response.status_code == expected
    assert counts()[0] == (1 if expected == 200 else 0)


def test_an_agent_owns_what_they_create_and_lands_on_its_profile(client, auth, ctx):
    agent = factories.make_user("attendant")
    auth.login(agent)
    response = client.post("/contacts/new", data=VALID)
    assert response.status_code == 303
    contact = only_contact()
    assert response.headers["Location"].endswith(f"/contacts/{contact.id}")
    assert (contact.owner_id, contact.status, contact.origin) == (
        agent.id,
        "assigned",
        "manual",
    )
    assert contact.phone_e164 == "+5511912345678"
    log = db.session.scalar(db.select(AssignmentLog))
    assert (log.to_user_id, log.by_user_id, log.how) == (agent.id, agent.id, "self")
    profile = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nina Nova was saved." in profile


def test_htmx_creation_answers_hx_redirect_to_the_profile(client, auth, ctx):
    auth.login(factories.make_user("seller"))
    response = client.hx_post("/contacts/new", data=VALID)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/contacts/{only_contact().id}"


def test_an_agent_cannot_pick_another_owner(client, auth, ctx):
    agent = factories.make_user("attendant")
    other = colleague("attendant")
    auth.login(agent)
    response = client.hx_post("/contacts/new", data=dict(VALID, owner=str(other.id)))
    assert response.status_code == 200
    # The form offers agents no owner; a forged one is ignored, not obeyed.
    assert only_contact().owner_id == agent.id
    form = client.get("/contacts/new").get_data(as_text=True)
    assert 'name="owner"' not in form


def test_a_manager_picks_an_owner_in_their_units(client, auth, ctx):
    manager = factories.make_user("manager", units=["downtown"])
    seller = colleague("seller", name="Sara Seller", units=["downtown"])
    colleague("seller", name="Otto Outsider", units=["uptown"])
    auth.login(manager)
    form = client.get("/contacts/new").get_data(as_text=True)
    assert "Sara Seller" in form and "Otto Outsider" not in form
    response = client.hx_post("/contacts/new", data=dict(VALID, owner=str(seller.id)))
    assert response.status_code == 200
    contact = only_contact()
    assert contact.owner_id == seller.id
    log = db.session.scalar(db.select(AssignmentLog))
    assert (log.to_user_id, log.by_user_id, log.how) == (
        seller.id,
        manager.id,
        "manual",
    )


@pytest.mark.parametrize(
    "owner", ["outsider", "reception", "999999", "abc", "-3", "1" * 40]
)
def test_a_manager_cannot_pick_an_owner_out_of_scope(client, auth, ctx, owner):
    manager = factories.make_user("manager", units=["downtown"])
    people = {
        "outsider": colleague("seller", units=["uptown"]),
        "reception": colleague("reception"),
    }
    auth.login(manager)
    owner_id = str(people[owner].id) if owner in people else owner
    response = client.hx_post("/contacts/new", data=dict(VALID, owner=owner_id))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="error-owner"' in html and "<html" not in html
    assert counts() == (0, 0, 0)


def test_an_admin_cannot_give_a_contact_to_someone_who_may_not_own(client, auth, ctx):
    receptionist = colleague("reception", name="Rita Reception")
    auth.login(factories.make_user("admin"))
    form = client.get("/contacts/new").get_data(as_text=True)
    assert "Rita Reception" not in form  # not offered
    response = client.hx_post(
        "/contacts/new", data=dict(VALID, owner=str(receptionist.id))
    )
    assert response.status_code == 422
    assert counts() == (0, 0, 0)


def test_reception_creates_unassigned_and_gets_a_confirmation(client, auth, ctx):
    receptionist = factories.make_user("reception")
    auth.login(receptionist)
    response = client.post("/contacts/new", data=VALID)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/contacts/new")
    contact = only_contact()
    assert contact.owner_id is None and contact.status == "new"
    assert contact.created_by_id == receptionist.id
    assert counts()[2] == 0  # no assignment happened
    page = client.get("/contacts/new").get_data(as_text=True)
    assert "Nina Nova was saved and waits for an owner." in page
    # ... and the receptionist may not open what they entered.
    assert client.get(f"/contacts/{contact.id}").status_code == 403
    htmx = client.hx_post("/contacts/new", data=dict(VALID, phone="", email="a@b.co"))
    assert htmx.headers["HX-Redirect"] == "/contacts/new"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a" * 10_000 + "@example.net"}, "email"),
        ({"phone": "11 9abc-5678"}, "phone"),
        ({"phone": "1" * 10_000}, "phone"),
        ({"phone": "", "email": ""}, "phone"),
        ({"tags": "t" * 10_000}, "tags"),
        ({"tags": ", ".join(f"tag{n}" for n in range(25))}, "tags"),
        ({"department": "999999"}, "department"),
        ({"department": "sales"}, "department"),
        ({"campaign": "999999"}, "campaign"),
        ({"campaign": "1; drop table contact"}, "campaign"),
    ],
)
def test_bad_input_is_422_next_to_the_field_and_writes_nothing(
    client, auth, ctx, overrides, field
):
    auth.login(factories.make_user("attendant"))
    response = client.hx_post("/contacts/new", data=dict(VALID, **overrides))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html
    assert 'id="contact-new"' in html and "<html" not in html
    assert counts() == (0, 0, 0)


def test_plain_post_with_errors_renders_the_page_with_422(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    response = client.post("/contacts/new", data=dict(VALID, name=""))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" in html and 'id="error-name"' in html
    assert 'value="+55 11 91234-5678"' in html  # what was typed stays
    assert counts() == (0, 0, 0)


def test_post_without_csrf_is_400_and_writes_nothing(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    response = client.post("/contacts/new", data=VALID, csrf=False)
    assert response.status_code == 400
    assert counts() == (0, 0, 0)


def test_html_in_text_fields_is_escaped_in_the_form_and_the_profile(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    data = dict(VALID, name=SCRIPT, tags=f"a, {SCRIPT}")
    refused = client.hx_post("/contacts/new", data=dict(data, email="bad"))
    assert refused.status_code == 422
    created = client.post("/contacts/new", data=data)
    assert created.status_code == 303
    profile = client.get(created.headers["Location"])
    for response in (refused, profile):
        html = response.get_data(as_text=True)
        assert "<script>alert" not in html and ESCAPED in html


# --- The match check ---


def test_submit_with_a_known_phone_shows_matches_until_confirmed(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.make_contact(agent, name="Paula Prior", phone="(11) 91234-5678")
    before = counts()
    auth.login(agent)
    # Same number, other formatting: matched after normalising.
    data = {"name": "Paula P.", "phone": "11912345678", "email": ""}
    response = client.hx_post("/contacts/new", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Paula Prior" in html and 'name="create_anyway"' in html
    assert "<html" not in html
    assert counts() == before
    confirmed = client.hx_post("/contacts/new", data=dict(data, create_anyway="1"))
    assert confirmed.status_code == 200 and "HX-Redirect" in confirmed.headers
    assert counts()[0] == before[0] + 1


def test_matches_by_email_ignore_case(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.make_contact(agent, name="Carla Case", email="carla@example.net")
    auth.login(agent)
    response = client.hx_get("/contacts/matches?email=CARLA@Example.NET")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Carla Case" in html and "<html" not in html


def test_a_visible_match_shows_name_and_link(client, auth, ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(agent, name="Vera Visible", phone="11 98888-7777")
    auth.login(agent)
    html = client.hx_get("/contacts/matches?phone=%2B5511988887777").get_data(
        as_text=True
    )
    assert "Vera Visible" in html
    assert f'href="/contacts/{contact.id}"' in html


def test_a_hidden_match_tells_only_whom_to_ask(client, auth, ctx):
    owner = colleague("attendant", name="Olivia Owner")
    secret = factories.make_contact(
        owner,
        name="Sonia Secret",
        phone="(11) 98765-4321",
        email="sonia@private.example",
    )
    auth.login(factories.make_user("attendant"))
    responses = [
        client.hx_get("/contacts/matches?phone=11987654321"),
        client.get("/contacts/matches?phone=11987654321"),
        client.hx_post(
            "/contacts/new",
            data={"name": "Someone", "phone": "+55 11 98765 4321", "email": ""},
        ),
    ]
    for response in responses:
        html = response.get_data(as_text=True)
        assert "Olivia Owner" in html
        for leak in (
            "Sonia",
            "sonia@private.example",
            "(11) 98765-4321",
            f"/contacts/{secret.id}",
        ):
            assert leak not in html


def test_a_hidden_unassigned_match_says_ask_a_manager(client, auth, ctx):
    colleague("reception")
    secret = factories.make_contact(
        unassigned=True, name="Quiet Quinn", email="quinn@example.net", campaign="vip"
    )
    auth.login(factories.make_user("attendant"))  # not in the campaign
    html = client.hx_get("/contacts/matches?email=quinn@example.net").get_data(
        as_text=True
    )
    assert "Ask a manager" in html
    assert "Quiet Quinn" not in html and f"/contacts/{secret.id}" not in html


def test_reception_sees_only_whom_to_ask(client, auth, ctx):
    owner = colleague("seller", name="Selma Seller")
    factories.make_contact(owner, name="Walk In", email="walk@example.net")
    auth.login(factories.make_user("reception"))
    html = client.hx_get("/contacts/matches?email=walk@example.net").get_data(
        as_text=True
    )
    assert "Selma Seller" in html and "Walk In" not in html


def test_no_match_and_unparseable_input_answer_an_empty_fragment(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.make_contact(agent, email="known@example.net")
    auth.login(agent)
    for query in ("phone=abc", "email=nope", "phone=&email=", "email=new@example.net"):
        response = client.hx_get(f"/contacts/matches?{query}")
        assert response.status_code == 200
        assert response.get_data(as_text=True).strip() == ""


def test_match_names_are_escaped(client, auth, ctx):
    agent = factories.make_user("attendant")
    factories.make_contact(agent, name=SCRIPT, email="x@example.net")
    auth.login(agent)
    html = client.hx_get("/contacts/matches?email=x@example.net").get_data(as_text=True)
    assert "<script>alert" not in html and ESCAPED in html
