"""The contact profile: details, timeline, adding history, status, inline edit.

Every endpoint answers 404 for a contact outside the viewer's scope and 403
when the viewer sees it but may not act; nothing is written on any error.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import AssignmentLog, Contact, HistoryEntry
from portal.models.base import utcnow
from tests import factories

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

# (method, path, form data) — every endpoint of the profile that names a contact.
ENDPOINTS = {
    "page": ("GET", "/contacts/{id}", None),
    "timeline": ("GET", "/contacts/{id}/timeline", None),
    "details": ("GET", "/contacts/{id}/details", None),
    "add_history": ("POST", "/contacts/{id}/history", {"kind": "note", "body": "Hi"}),
    "status": ("POST", "/contacts/{id}/status", {"status": "won", "reason": "Paid"}),
    "edit_form": ("GET", "/contacts/{id}/edit", None),
    "edit_save": (
        "POST",
        "/contacts/{id}/edit",
        {"name": "Renamed", "phone": "+55 11 91234-0000", "email": "r@example.net"},
    ),
}
WRITES = {"add_history", "status", "edit_save"}
ROLES_WITH_CONTACTS = ("admin", "coordinator", "manager", "attendant", "seller")
ROLES_WITHOUT_CONTACTS = ("reception", "media", "ranking")


def colleague(role: str, **kwargs):
    """A user who never signs in here: no password, so no slow hashing."""
    return factories.make_user(role, password=None, **kwargs)


def count(model) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(model))


def fresh(contact: Contact) -> Contact:
    db.session.expire_all()
    return db.session.get(Contact, contact.id)


def call(client, endpoint: str, contact_id: int, htmx: bool = True, **overrides):
    method, path, data = ENDPOINTS[endpoint]
    url = path.format(id=contact_id)
    if method == "GET":
        return client.hx_get(url) if htmx else client.get(url)
    form = dict(data, **overrides)
    return client.hx_post(url, data=form) if htmx else client.post(url, data=form)


def viewer_and_contacts(role: str):
    """A viewer of `role`, a contact in their scope and one outside it."""
    colleague("admin")  # who creates the contacts (factories' first admin)
    if role == "coordinator":
        viewer = factories.make_user(role, teams=["north"])
        mine = colleague("attendant", teams=["north"])
        other = colleague("attendant", teams=["south"])
    elif role == "manager":
        viewer = factories.make_user(role, units=["downtown"])
        mine = colleague("seller", units=["downtown"])
        other = colleague("seller", units=["uptown"])
    elif role == "admin":
        viewer = factories.make_user(role)
        mine = colleague("attendant")
        other = None  # an admin sees every contact of the account
    else:
        viewer = factories.make_user(role)
        mine = viewer
        other = colleague(role)
    in_scope = factories.make_contact(owner=mine)
    out_of_scope = factories.make_contact(owner=other) if other else None
    return viewer, in_scope, out_of_scope


MATRIX = [
    pytest.param(role, endpoint, scope, id=f"{role}-{endpoint}-{scope}")
    for role in ROLES_WITH_CONTACTS + ("callcenter",)
    for endpoint in ENDPOINTS
    for scope in ("in", "out")
    if not (role == "admin" and scope == "out")
]


@pytest.mark.parametrize(("role", "endpoint", "scope"), MATRIX)
def test_access_matrix_in_scope_200_out_of_scope_404(
    client, auth, ctx, role, endpoint, scope
):
    viewer, in_scope, out_of_scope = viewer_and_contacts(role)
    contact = in_scope if scope == "in" else out_of_scope
    before = (count(HistoryEntry), fresh(contact).name, fresh(contact).status)
    auth.login(viewer)
    response = call(client, endpoint, contact.id)
    if scope == "in":
        assert response.status_code == 200, response.get_data(as_text=True)
        # The page is a page even when htmx asks; every other URL a fragment.
        assert ("<html" in response.get_data(as_text=True)) == (endpoint == "page")
    else:
        assert response.status_code == 404
        after = (count(HistoryEntry), fresh(contact).name, fresh(contact).status)
        assert after == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", ROLES_WITHOUT_CONTACTS)
def test_roles_without_contact_access_get_403(client, auth, ctx, role, endpoint):
    colleague("admin")
    contact = factories.make_contact(owner=colleague("attendant"))
    history = count(HistoryEntry)
    auth.login(factories.make_user(role))
    assert call(client, endpoint, contact.id).status_code == 403
    assert count(HistoryEntry) == history


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("page", 200),
        ("timeline", 200),
        ("details", 200),
        ("add_history", 200),
        ("status", 403),
        ("edit_form", 403),
        ("edit_save", 403),
    ],
)
def test_agent_sees_a_claimable_contact_but_may_not_change_it(
    client, auth, ctx, endpoint, expected
):
    colleague("reception")  # who enters unassigned contacts in the factories
    contact = factories.make_contact(unassigned=True)
    auth.login(factories.make_user("attendant"))
    response = call(client, endpoint, contact.id)
    assert response.status_code == expected
    if expected == 403:
        assert fresh(contact).name != "Renamed"
        assert fresh(contact).status == "new"


def test_unknown_contact_id_is_404_everywhere(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    for endpoint in ENDPOINTS:
        assert call(client, endpoint, 999999).status_code == 404, endpoint


def test_profile_shows_details_owner_and_timeline(client, auth, ctx):
    owner = factories.make_user("attendant", name="Olga Owner")
    contact = factories.make_contact(
        owner=owner,
        name="Maria Souza",
        phone="(11) 98765-4321",
        email="maria@example.net",
        department="sales",
        campaign="summer",
    )
    auth.login(owner)
    html = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Maria Souza" in html
    assert "(11) 98765-4321" in html and 'href="tel:+5511987654321"' in html
    assert "maria@example.net" in html
    assert "Sales" in html or "sales" in html
    assert "Summer" in html
    assert f'id="owner-{contact.id}"' in html and "Olga Owner" in html
    assert (
        "Assigned to <bdi>Olga Owner</bdi>" in html
    )  # the creation's assignment entry
    assert "Manual" in html  # origin
    assert "First response" not in html  # not attended yet


def test_first_entry_by_the_owner_marks_attended_second_does_not(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    # Assigned a while ago, so the measured first response is not zero.
    row = fresh(contact)
    row.assigned_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    auth.login(owner)

    first = client.hx_post(
        f"/contacts/{contact.id}/history", data={"kind": "call", "body": "Called"}
    )
    assert first.status_code == 200
    html = first.get_data(as_text=True)
    assert "<html" not in html
    assert 'hx-target="#timeline-entries" hx-swap="afterbegin"' in html
    assert "Called" in html
    # The status turned in_progress: the response refreshes the status block.
    assert 'hx-target="#contact-status"' in html and "In progress" in html
    row = fresh(contact)
    assert row.status == "in_progress"
    assert 300 <= row.first_response_seconds < 400
    attended_at, first_response = row.attended_at, row.first_response_seconds

    second = client.hx_post(
        f"/contacts/{contact.id}/history", data={"kind": "note", "body": "Again"}
    )
    assert second.status_code == 200
    assert 'hx-target="#contact-status"' not in second.get_data(as_text=True)
    row = fresh(contact)
    assert (row.attended_at, row.first_response_seconds) == (
        attended_at,
        first_response,
    )


def test_an_entry_by_someone_else_does_not_mark_attended(client, auth, ctx):
    manager = factories.make_user("manager", units=["downtown"])
    seller = colleague("seller", units=["downtown"])
    contact = factories.make_contact(owner=seller)
    auth.login(manager)
    response = client.hx_post(
        f"/contacts/{contact.id}/history", data={"kind": "note", "body": "Check it"}
    )
    assert response.status_code == 200
    row = fresh(contact)
    assert row.status == "assigned" and row.attended_at is None


def test_an_edit_by_the_owner_marks_attended(client, auth, ctx):
    owner = factories.make_user("seller")
    contact = factories.make_contact(owner=owner, name="Old Name")
    auth.login(owner)
    response = call(client, "edit_save", contact.id, name="New Name")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert 'id="contact-details"' in html and "New Name" in html
    assert 'hx-target="#contact-name"' in html  # the heading follows the name
    assert "Edited the details." in html  # the edit entry, prepended
    assert 'hx-target="#contact-status"' in html
    row = fresh(contact)
    assert row.name == "New Name" and row.name_search == "new name"
    assert row.status == "in_progress" and row.first_response_seconds is not None


def test_edit_keeps_custom_fields_and_can_add_and_remove_them(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner, name="Ana", email="ana@example.net")
    auth.login(owner)
    data = {
        "name": "Ana",
        "email": "ana@example.net",
        "custom_key": ["Budget", "Source"],
        "custom_value": ["10k", "fair"],
    }
    assert client.hx_post(f"/contacts/{contact.id}/edit", data=data).status_code == 200
    assert fresh(contact).custom == {"Budget": "10k", "Source": "fair"}
    form = client.hx_get(f"/contacts/{contact.id}/edit").get_data(as_text=True)
    assert 'value="Budget"' in form and 'value="10k"' in form
    data["custom_value"] = ["", "fair"]  # emptying a value removes the field
    assert client.hx_post(f"/contacts/{contact.id}/edit", data=data).status_code == 200
    assert fresh(contact).custom == {"Source": "fair"}


def test_status_change_with_reason_updates_block_and_timeline(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    response = client.hx_post(
        f"/contacts/{contact.id}/status", data={"status": "lost", "reason": "Too dear"}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert 'id="contact-status"' in html and "Lost" in html
    assert "Status changed from Assigned to Lost." in html
    assert "Reason: <bdi>Too dear</bdi>" in html
    row = fresh(contact)
    assert (row.status, row.status_reason) == ("lost", "Too dear")


@pytest.mark.parametrize("status", ["won", "lost"])
def test_won_or_lost_without_a_reason_is_422_and_changes_nothing(
    client, auth, ctx, status
):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    history = count(HistoryEntry)
    auth.login(owner)
    response = client.hx_post(
        f"/contacts/{contact.id}/status", data={"status": status, "reason": "  "}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="error-reason"' in html and "Say why." in html
    assert "<html" not in html
    assert fresh(contact).status == "assigned"
    assert count(HistoryEntry) == history


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"status": "won", "reason": "x" * 10_000}, "reason"),
        ({"status": "bogus", "reason": ""}, "status"),
        ({"status": "new", "reason": ""}, "status"),
        ({"reason": "no status"}, "status"),
    ],
)
def test_bad_status_input_is_422_next_to_the_field(client, auth, ctx, data, field):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    history = count(HistoryEntry)
    auth.login(owner)
    response = client.hx_post(f"/contacts/{contact.id}/status", data=data)
    assert response.status_code == 422
    assert f'id="error-{field}"' in response.get_data(as_text=True)
    assert fresh(contact).status == "assigned"
    assert count(HistoryEntry) == history


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "note", "body": ""}, "body"),
        ({"kind": "note", "body": "   "}, "body"),
        ({"kind": "note", "body": "x" * 10_000}, "body"),
        ({"kind": "status", "body": "sneaky"}, "kind"),
    ],
)
def test_bad_history_input_is_422_and_writes_nothing(client, auth, ctx, data, field):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    history = count(HistoryEntry)
    auth.login(owner)
    response = client.hx_post(f"/contacts/{contact.id}/history", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html and 'id="history-form"' in html
    assert "<html" not in html
    assert count(HistoryEntry) == history
    row = fresh(contact)
    assert row.status == "assigned" and row.attended_at is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "x" * 10_000 + "@example.net"}, "email"),
        ({"phone": "11 9abc-5678"}, "phone"),
        ({"phone": "9" * 10_000}, "phone"),
        ({"tags": "x" * 10_000}, "tags"),
        ({"tags": "fine, " + "y" * 60}, "tags"),
        ({"department": "999999"}, "department"),
        ({"department": "sales"}, "department"),
        ({"campaign": "999999"}, "campaign"),
        ({"campaign": "-1"}, "campaign"),
        ({"custom_key": "k", "custom_value": "v" * 10_000}, "custom"),
        ({"custom_key": "", "custom_value": "orphan"}, "custom"),
    ],
)
def test_bad_edit_input_is_422_next_to_the_field_and_writes_nothing(
    client, auth, ctx, overrides, field
):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner, name="Kept", email="kept@example.net")
    history = count(HistoryEntry)
    auth.login(owner)
    response = call(client, "edit_save", contact.id, **overrides)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="error-{field}"' in html
    assert 'id="contact-details"' in html and "<html" not in html
    row = fresh(contact)
    assert (row.name, row.email, row.status) == ("Kept", "kept@example.net", "assigned")
    assert row.attended_at is None
    assert count(HistoryEntry) == history


def test_edit_form_choices_reject_another_accounts_ids(client, auth, ctx):
    # Ids that exist but belong to no department are refused like any unknown.
    owner = factories.make_user("attendant", departments=["rentals"])
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    response = call(client, "edit_save", contact.id, department="0")
    assert response.status_code == 422


def test_html_in_every_text_field_is_escaped_everywhere(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner, email="x@example.net")
    auth.login(owner)
    data = {
        "name": f"Eve {SCRIPT}",
        "email": "x@example.net",
        "tags": f"vip, {SCRIPT}",
        "custom_key": [SCRIPT],
        "custom_value": [SCRIPT],
    }
    saved = client.hx_post(f"/contacts/{contact.id}/edit", data=data)
    assert saved.status_code == 200
    noted = client.hx_post(
        f"/contacts/{contact.id}/history", data={"kind": "note", "body": SCRIPT}
    )
    lost = client.hx_post(
        f"/contacts/{contact.id}/status", data={"status": "lost", "reason": SCRIPT}
    )
    refused = call(client, "edit_save", contact.id, name=SCRIPT, email="bad")
    assert refused.status_code == 422
    responses = [
        saved,
        noted,
        lost,
        refused,
        client.get(f"/contacts/{contact.id}"),
        client.hx_get(f"/contacts/{contact.id}/timeline"),
        client.hx_get(f"/contacts/{contact.id}/details"),
        client.hx_get(f"/contacts/{contact.id}/edit"),
    ]
    for response in responses:
        html = response.get_data(as_text=True)
        assert "<script>alert" not in html
        assert ESCAPED in html


def test_timeline_is_newest_first_with_keyset_older_link(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    for n in range(24):
        client.hx_post(
            f"/contacts/{contact.id}/history", data={"kind": "note", "body": f"n{n}"}
        )
    html = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert html.index(">n23<") < html.index(">n22<")
    assert ">n4<" in html and ">n3<" not in html  # 20 per page
    ids = [e.id for e in db.session.scalars(db.select(HistoryEntry))]
    oldest_shown = sorted(ids)[-20]
    older_url = f"/contacts/{contact.id}/timeline?before={oldest_shown}"
    assert f'hx-get="{older_url}"' in html
    older = client.hx_get(older_url)
    assert older.status_code == 200
    page = older.get_data(as_text=True)
    assert "<html" not in page
    assert ">n3<" in page and ">n0<" in page and ">n4<" not in page
    assert "Assigned to" in page  # the creation's entry is the oldest
    assert "before=" not in page  # the last page has no older link
    # Without JavaScript the older link opens the page at that point.
    plain = client.get(f"/contacts/{contact.id}?before={oldest_shown}")
    assert ">n3<" in plain.get_data(as_text=True)


def test_timeline_shows_assignments_from_to_by_and_how(client, auth, ctx):
    manager = factories.make_user("manager", name="Mia Manager", units=["downtown"])
    first = colleague("seller", name="Sam Seller", units=["downtown"])
    second = colleague("seller", name="Tia Seller", units=["downtown"])
    contact = factories.make_contact(owner=first)
    auth.login(manager)
    assert (
        client.hx_post(
            f"/contacts/{contact.id}/assign", data={"user_id": second.id}
        ).status_code
        == 200
    )
    # The refresh the timeline asks for after the owner component's request.
    refresh = client.hx_get(f"/contacts/{contact.id}/timeline")
    html = refresh.get_data(as_text=True)
    assert "<html" not in html
    assert (
        "Owner changed from <bdi>Sam Seller</bdi> to <bdi>Tia Seller</bdi>"
        " (reassignment)." in html
    )
    assert "Mia Manager" in html  # by whom
    assert 'hx-target="#contact-status"' in html
    assert db.session.scalar(db.select(db.func.count(AssignmentLog.id))) == 2


def test_profile_wires_the_timeline_to_the_owner_component(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    html = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert 'id="profile-owner"' in html
    assert 'hx-trigger="htmx:after:request from:#profile-owner"' in html


def test_edit_form_and_cancel_are_fragments_of_the_details_block(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner, name="Frida")
    auth.login(owner)
    form = client.hx_get(f"/contacts/{contact.id}/edit").get_data(as_text=True)
    assert 'id="contact-details"' in form and 'name="name"' in form
    assert 'value="Frida"' in form and "<html" not in form
    rest = client.hx_get(f"/contacts/{contact.id}/details").get_data(as_text=True)
    assert 'id="contact-details"' in rest and 'name="name"' not in rest
    # Without JavaScript the edit link opens the whole page with the form.
    page = client.get(f"/contacts/{contact.id}/edit").get_data(as_text=True)
    assert "<html" in page and 'name="custom_key"' in page


def test_plain_posts_redirect_back_to_the_profile(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    profile = f"/contacts/{contact.id}"
    for endpoint in ("add_history", "status", "edit_save"):
        response = call(client, endpoint, contact.id, htmx=False)
        assert response.status_code == 303, endpoint
        assert response.headers["Location"].endswith(profile)


def test_plain_post_with_errors_renders_the_page_with_422(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    auth.login(owner)
    response = client.post(
        f"/contacts/{contact.id}/history", data={"kind": "note", "body": ""}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" in html and 'id="error-body"' in html


@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_posts_without_csrf_are_refused(client, auth, ctx, endpoint):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner=owner)
    history = count(HistoryEntry)
    auth.login(owner)
    method, path, data = ENDPOINTS[endpoint]
    response = client.post(path.format(id=contact.id), data=data, csrf=False)
    assert response.status_code == 400
    assert count(HistoryEntry) == history
    row = fresh(contact)
    assert (row.status, row.attended_at) == ("assigned", None)


def test_signed_out_fragment_request_is_sent_to_sign_in(client, ctx):
    contact = factories.make_contact(owner=colleague("attendant"))
    response = client.hx_get(f"/contacts/{contact.id}/timeline")
    assert response.status_code == 401
    assert "HX-Redirect" in response.headers
