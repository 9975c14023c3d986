"""The Leads section of the contact profile: each lead with its state and
response times, and for those who assign, the roulette's record: every
offer and "why this agent" (the candidates and each one's reason)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from portal.contacts.leads import CANDIDATE_LABELS, contact_leads
from portal.errors import NotFound
from portal.extensions import db
from portal.models import Lead, Offer
from portal.roulette import decisions, pool, routing, switch
from portal.roulette.choice import Skip
from tests import factories


def section(body: str) -> str:
    """The Leads section of a page or fragment."""
    start = body.index('<section id="contact-leads"')
    return body[start : body.index("</section>", start)]


def lead_ids(body: str) -> list[int]:
    return [int(x) for x in re.findall(r'<li class="entry lead" id="lead-(\d+)"', body)]


@pytest.fixture
def world(ctx):
    """A routed lead (a1 declined, a2 accepted) on a contact a2 now owns, and
    a lead waiting on an unassigned contact because nobody is available."""
    w = SimpleNamespace()
    factories.enable_roulette()
    w.admin = factories.make_user("admin", name="Ada Admin")
    w.coordinator = factories.make_user("coordinator", teams=["t1"])
    w.a1 = factories.make_user(
        "attendant", name="Alice Agent", teams=["t1"], departments=["sales"]
    )
    w.a2 = factories.make_user(
        "attendant", name="Bruno Agent", teams=["t2"], departments=["sales"]
    )
    factories.go_online(w.a1)
    factories.go_online(w.a2)
    w.routed = factories.make_lead(
        department="sales", source="website", message="Interested in the 2-bedroom"
    )
    first = routing.route_lead(w.routed.id)
    assert first.agent_id == w.a1.id
    decisions.decline(w.a1, first.offer_id)
    second = pool.pending_offer(w.a2.id)
    decisions.accept(w.a2, second.id)
    w.declined_offer, w.accepted_offer = first.offer_id, second.id
    w.owned = w.routed.contact  # a2 owns it now
    # Both switch off: the next lead waits, and says why.
    switch.set_available(w.a1, False)
    switch.set_available(w.a2, False)
    w.waiting = factories.make_lead(department="sales", source="landing")
    assert routing.route_lead(w.waiting.id) is None
    w.free = w.waiting.contact
    db.session.expire_all()
    return w


def leads_fragment(client, contact) -> str:
    response = client.hx_get(f"/contacts/{contact.id}/leads")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    return body


def test_a_manager_sees_each_offer_and_why_this_agent(client, auth, world):
    auth.login(world.admin)
    body = leads_fragment(client, world.owned)
    assert body.lstrip().startswith('<section id="contact-leads"')
    assert lead_ids(body) == [world.routed.id]
    lead = body[body.index(f'id="lead-{world.routed.id}"') :]
    assert "Assigned" in lead
    assert "website" in lead and "Interested in the 2-bedroom" in lead
    assert "<dt>Department</dt><dd><bdi>sales</bdi></dd>" in lead
    assert "Taken by" in lead and "Bruno Agent" in lead
    assert "from arrival to acceptance" in lead  # speed to lead
    # The offers, oldest first: Alice declined, then Bruno accepted.
    declined = lead[lead.index(f'id="offer-record-{world.declined_offer}"') :]
    declined = declined[: declined.index("</details>")]
    accepted = lead[lead.index(f'id="offer-record-{world.accepted_offer}"') :]
    accepted = accepted[: accepted.index("</details>")]
    assert lead.index(f"offer-record-{world.declined_offer}") < lead.index(
        f"offer-record-{world.accepted_offer}"
    )
    assert 'data-offer-state="declined"' in declined
    assert "Alice Agent" in declined and "Declined" in declined
    assert "round 1" in declined and "longest wait since an offer" in declined
    assert "Offered" in declined and "Seen" in declined and "Decided" in declined
    assert "Why this agent" in declined
    # Alice's offer: she was chosen, Bruno was eligible but not yet his turn.
    assert re.search(
        r'data-reason="chosen"><strong><bdi>Alice Agent</bdi></strong>: chosen',
        declined,
    )
    assert re.search(
        r'data-reason="later"><strong><bdi>Bruno Agent</bdi></strong>: '
        r"eligible, not their turn yet",
        declined,
    )
    # Bruno's offer: Alice had declined this lead already.
    assert 'data-offer-state="accepted"' in accepted and "Accepted" in accepted
    assert re.search(
        r'data-reason="declined"><strong><bdi>Alice Agent</bdi></strong>: '
        r"already declined this lead",
        accepted,
    )
    assert re.search(
        r'data-reason="chosen"><strong><bdi>Bruno Agent</bdi></strong>', accepted
    )


def test_a_waiting_lead_says_why_it_waits(client, auth, world):
    auth.login(world.admin)
    body = leads_fragment(client, world.free)
    lead = body[body.index(f'id="lead-{world.waiting.id}"') :]
    assert 'data-lead-state="queued"' in lead
    assert "Waiting in the queue" in lead
    assert "Nobody could take it at the last try (round 1)" in lead
    assert re.search(
        r'data-reason="paused"><strong><bdi>Alice Agent</bdi></strong>: not available',
        lead,
    )
    assert re.search(
        r'data-reason="paused"><strong><bdi>Bruno Agent</bdi></strong>: not available',
        lead,
    )
    assert "offer-record-" not in lead  # never offered


def test_a_coordinator_sees_the_record_of_contacts_in_their_scope(client, auth, world):
    auth.login(world.coordinator)
    body = leads_fragment(client, world.free)  # unassigned: in their scope
    assert "not available" in body
    # Bruno (team t2) owns the routed contact: not theirs to see.
    assert client.hx_get(f"/contacts/{world.owned.id}/leads").status_code == 404


def test_an_agent_sees_their_contacts_leads_but_not_colleagues_reasons(
    client, auth, world
):
    auth.login(world.a2)
    body = leads_fragment(client, world.owned)
    assert lead_ids(body) == [world.routed.id]
    assert "Assigned" in body and "website" in body
    assert "from arrival to acceptance" in body
    # No offers, no candidate lists, no skip reasons, no colleague's name.
    assert "offer-record-" not in body
    assert "Why this agent" not in body
    assert "data-reason=" not in body
    assert "already declined" not in body
    assert "Alice Agent" not in body
    # The same holds on an unassigned contact they may see and claim.
    free = leads_fragment(client, world.free)
    assert "Waiting in the queue" in free
    assert "data-reason=" not in free and "not available" not in free


def test_the_service_gives_agents_no_routing(world):
    page = contact_leads(world.a2, world.owned.id)
    assert page.shows_routing is False
    assert [r.lead.id for r in page.leads] == [world.routed.id]
    assert page.leads[0].offers == []
    page = contact_leads(world.admin, world.free.id)
    assert page.shows_routing is True
    assert [c.reason for c in page.leads[0].waiting_reasons] == ["paused", "paused"]


def test_a_user_who_cannot_see_the_contact_gets_404_everywhere(client, auth, world):
    auth.login(world.a1)  # Bruno owns it; Alice is a restricted agent
    url = f"/contacts/{world.owned.id}/leads"
    for response in (
        client.hx_get(url),
        client.get(url),
        client.hx_get(url, query_string={"leads_before": "999"}),
        client.get(f"/contacts/{world.owned.id}"),
    ):
        assert response.status_code == 404
        body = response.get_data(as_text=True)
        assert "Interested in the 2-bedroom" not in body
    with pytest.raises(NotFound):
        contact_leads(world.a1, world.owned.id)


def test_roles_without_contact_access_are_refused(client, auth, world):
    auth.login(factories.make_user("media"))
    assert client.hx_get(f"/contacts/{world.free.id}/leads").status_code == 403


def test_the_page_loads_the_section_lazily(client, auth, world):
    auth.login(world.admin)
    page = client.get(f"/contacts/{world.owned.id}").get_data(as_text=True)
    leads = section(page)
    assert f'hx-get="/contacts/{world.owned.id}/leads"' in leads
    assert 'hx-trigger="load, htmx:after:request from:#profile-owner"' in leads
    assert "offer-record-" not in leads  # not rendered until asked for
    # The loaded section refreshes when the owner changes, not on load again.
    loaded = section(leads_fragment(client, world.owned))
    assert 'hx-trigger="htmx:after:request from:#profile-owner"' in loaded


def test_without_javascript_the_link_opens_the_page_with_the_section(
    client, auth, world
):
    auth.login(world.admin)
    response = client.get(f"/contacts/{world.owned.id}/leads")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in body
    leads = section(body)
    assert f'id="offer-record-{world.accepted_offer}"' in leads
    assert "Timeline" in body  # the rest of the profile is there too


def test_leads_are_listed_newest_first_and_paged(client, auth, world):
    contact = world.free
    more = [factories.make_lead(contact, source=f"form-{n}") for n in range(11)]
    expected = sorted([world.waiting.id] + [x.id for x in more], reverse=True)
    auth.login(world.admin)
    first = leads_fragment(client, contact)
    assert lead_ids(first) == expected[:10]
    link = re.search(r'hx-get="([^"]+leads_before=\d+)"', first).group(1)
    older = client.hx_get(link.replace("&amp;", "&"))
    body = older.get_data(as_text=True)
    assert older.status_code == 200 and "<html" not in body
    assert '<section id="contact-leads"' not in body  # only the older items
    assert lead_ids(body) == expected[10:]
    assert "leads_before=" not in body  # the end


def test_a_contact_without_leads_says_so(client, auth, world):
    contact = factories.make_contact(world.admin)
    auth.login(world.admin)
    assert "No leads yet." in leads_fragment(client, contact)


def test_first_response_is_shown_when_known(client, auth, world):
    db.session.execute(
        update(Lead).where(Lead.id == world.routed.id).values(first_response_seconds=95)
    )
    db.session.commit()
    auth.login(world.a2)
    body = leads_fragment(client, world.owned)
    assert 'data-seconds="95"' in body
    assert "from arrival to first contact" in body


def test_what_a_lead_carries_is_escaped(client, auth, world):
    evil = "<script>alert(1)</script>"
    factories.make_lead(world.free, source=evil[:50], message=evil)
    auth.login(world.admin)
    body = leads_fragment(client, world.free)
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_every_reason_a_candidate_can_have_is_labelled():
    codes = {
        value
        for name, value in vars(Skip).items()
        if not name.startswith("_") and isinstance(value, str)
    }
    assert codes | {"later"} <= set(CANDIDATE_LABELS)


def test_offers_of_other_contacts_never_leak_in(client, auth, world):
    # The routed contact's offers must not show under the waiting contact.
    auth.login(world.admin)
    body = leads_fragment(client, world.free)
    assert f"offer-record-{world.declined_offer}" not in body
    assert db.session.scalar(db.select(db.func.count()).select_from(Offer)) == 2
