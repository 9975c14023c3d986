from portal.extensions import db
from portal.models import Contact, Lead, Offer
from portal.roulette import service
from tests.factories import enable_roulette, go_online, make_lead, make_user


def test_a_lead_goes_to_the_longest_waiting_online_agent_and_accept_owns_it(ctx):
    enable_roulette()
    first = make_user("attendant", departments=["sales"])
    second = make_user("attendant", departments=["sales"])
    go_online(first)
    go_online(second)
    lead = make_lead(department="sales")
    placed = service.route_lead(lead.id)
    assert placed is not None
    assert placed.agent_id == first.id
    offer = db.session.get(Offer, placed.offer_id)
    reasons = {c["id"]: c["reason"] for c in offer.candidates}
    assert reasons == {first.id: "chosen", second.id: "later"}
    service.accept(first, offer.id)
    assert db.session.get(Lead, lead.id).state == "assigned"
    assert db.session.get(Contact, lead.contact_id).owner_id == first.id


def test_decline_passes_to_the_next(ctx):
    enable_roulette()
    first = make_user("attendant", departments=["sales"])
    second = make_user("attendant", departments=["sales"])
    go_online(first)
    go_online(second)
    lead = make_lead(department="sales")
    placed = service.route_lead(lead.id)
    service.decline(db.session.get(type(first), placed.agent_id), placed.offer_id)
    pending = service.pending_offer(second.id)
    assert pending is not None and pending.lead_id == lead.id
