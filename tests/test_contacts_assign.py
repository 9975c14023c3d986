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


def test_a_claim_on_a_contact_an_admin_gave_away_is_404_not_a_name(client, auth, ctx):
    # The contact waited in the queue, but a person handed it over: a claim
    # by id must not learn whom it went to.
    admin = factories.make_user("admin")
    given_to = factories.make_user("attendant", name="Secret Sam")
    contact = factories.make_contact(unassigned=True)
    auth.login(admin)
    response = client.hx_post(
        f"/contacts/{contact.id}/assign", data={"user_id": str(given_to.id)}
    )
    assert response.status_code == 200
    auth.logout()
    auth.login(factories.make_user("attendant"))
    response = client.hx_post(f"/contacts/{contact.id}/assign", data={"user_id": ""})
    assert response.status_code == 404
    assert "Secret Sam" not in response.get_data(as_text=True)


def test_a_claim_on_a_contact_given_within_another_unit_is_404(client, auth, ctx):
    north_manager = factories.make_user("manager", units=["north"])
    seller = factories.make_user("seller", units=["north"], name="North Nadia")
    south_manager = factories.make_user("manager", units=["south"])
    for manager, unit in ((north_manager, "north"), (south_manager, "south")):
        membership = manager.unit_memberships[0]
        assert membership.unit.key == unit
        membership.is_manager = True
    db.session.commit()
    contact = factories.make_contact(unassigned=True)
    auth.login(north_manager)
    response = client.hx_post(
        f"/contacts/{contact.id}/assign", data={"user_id": str(seller.id)}
    )
    assert response.status_code == 200
    auth.logout()
    auth.login(south_manager)
    response = client.hx_post(f"/contacts/{contact.id}/assign", data={"user_id": ""})
    assert response.status_code == 404
    assert "North Nadia" not in response.get_data(as_text=True)


def test_a_claim_losing_to_a_manager_who_took_it_names_them(client, auth, ctx):
    # Taking it for oneself is a claim like any other: the loser could have
    # had it and is told who was quicker.
    manager = factories.make_user("admin", name="Mona Manager")
    contact = factories.make_contact(unassigned=True)
    auth.login(manager)
    assert client.hx_post(f"/contacts/{contact.id}/assign").status_code == 200
    auth.logout()
    auth.login(factories.make_user("attendant"))
    response = client.hx_post(f"/contacts/{contact.id}/assign", data={"user_id": ""})
    assert response.status_code == 409
    assert "Already taken by Mona Manager" in response.get_data(as_text=True)
