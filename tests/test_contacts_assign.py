"""POST /contacts/<id>/assign as CONTRACT describes it."""

from __future__ import annotations

from portal.extensions import db
from portal.models import Contact
from tests import factories


def test_take_an_unassigned_contact_answers_the_owner_fragment(client, auth, ctx):
    agent = factories.make_user("attendant", name="Ana Agent")
    contact = factories.make_contact(unassigned=True)
    auth.login(agent)
    response = client.hx_post(f"/contacts/{contact.id}/assign", data={"user_id": ""})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert f'id="owner-{contact.id}"' in html and "Ana Agent" in html
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).owner_id == agent.id


def test_second_claim_gets_409_naming_the_winner(client, auth, ctx):
    winner = factories.make_user("attendant", name="Quick Quinn")
    loser = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    auth.login(winner)
    assert client.hx_post(f"/contacts/{contact.id}/assign").status_code == 200
    auth.logout()
    auth.login(loser)
    response = client.hx_post(f"/contacts/{contact.id}/assign")
    assert response.status_code == 409
    assert "Already taken by Quick Quinn" in response.get_data(as_text=True)


def test_contact_out_of_scope_is_404(client, auth, ctx):
    owner = factories.make_user("attendant")
    contact = factories.make_contact(owner)
    auth.login(factories.make_user("attendant"))
    assert client.hx_post(f"/contacts/{contact.id}/assign").status_code == 404
    assert client.get(f"/contacts/{contact.id}").status_code == 404


def test_agent_assigning_to_someone_else_is_403(client, auth, ctx):
    colleague = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    auth.login(factories.make_user("attendant"))
    response = client.hx_post(
        f"/contacts/{contact.id}/assign", data={"user_id": str(colleague.id)}
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).owner_id is None


def test_plain_form_post_redirects_with_303(client, auth, ctx):
    contact = factories.make_contact(unassigned=True)
    auth.login(factories.make_user("attendant"))
    response = client.post(f"/contacts/{contact.id}/assign")
    assert response.status_code == 303


def test_assign_without_csrf_is_refused(client, auth, ctx):
    contact = factories.make_contact(unassigned=True)
    auth.login(factories.make_user("attendant"))
    response = client.post(f"/contacts/{contact.id}/assign", csrf=False)
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).owner_id is None
