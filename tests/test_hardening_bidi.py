"""A right-to-left override (U+202E) in a name reorders only that name: every
text people typed is shown isolated, in a <bdi> or an element with a `dir`
attribute (issue 12, item 7)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from flask import Flask

from portal.extensions import db
from portal.models import Offer
from portal.org import structure
from portal.realtime.hub import channel_of
from portal.redis_conn import get_redis
from portal.roles import service as roles
from portal.roulette import push, routing
from portal.security import isolate
from portal.settings.service import current_account
from tests import factories
from tests.conftest import Auth, PortalClient

RLO = "\u202e"
EVIL = f"Ana {RLO}evil"  # would read "Ana live" and drag what follows with it

# Elements whose text is a box of its own: an override inside cannot reach
# the text around them (and they cannot hold a <bdi>).
_OWN_BOX = {"option", "textarea", "title", "script", "style"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link"}
_VOID |= {"meta", "source", "track", "wbr"}


class _IsolationCheck(HTMLParser):
    """Collects each text holding an RLO that no isolating element encloses."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, bool]] = []
        self.exposed: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        isolates = tag == "bdi" or tag in _OWN_BOX or any(k == "dir" for k, _ in attrs)
        self.open.append((tag, isolates))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                del self.open[index:]
                return

    def handle_data(self, data: str) -> None:
        if RLO in data and not any(isolates for _, isolates in self.open):
            self.exposed.append(data)


def assert_isolated(html: str, at_least: int = 1) -> None:
    """Every RLO in `html`'s text is inside an isolate; `at_least` were shown."""
    assert html.count(RLO) >= at_least, "the name was not shown at all"
    check = _IsolationCheck()
    check.feed(html)
    assert not check.exposed, check.exposed


def test_isolate_escapes_and_wraps() -> None:
    assert isolate("<b>Ana</b>") == "<bdi>&lt;b&gt;Ana&lt;/b&gt;</bdi>"
    assert isolate(None) == "" and isolate("") == ""


def test_the_checker_sees_an_exposed_override() -> None:
    with pytest.raises(AssertionError):
        assert_isolated(f"<td>{EVIL} <span>waiting</span></td>")
    assert_isolated(f"<td><bdi>{EVIL}</bdi> <span>waiting</span></td>")
    assert_isolated(f'<p dir="auto">{EVIL}</p><option>{EVIL}</option>', 2)


@pytest.fixture
def evil_world(ctx: None) -> dict:
    """Everything people name, named with an override."""
    account = current_account()
    department = structure.get_or_create_department(account, "sales", f"Sales {RLO}x")
    db.session.commit()
    admin = factories.make_user(
        "admin", name=f"Boss {RLO}x", teams=["t"], units=["u"], departments=["sales"]
    )
    agent = factories.make_user("attendant", name=f"Agent {RLO}x")
    contact = factories.make_contact(admin, name=EVIL, owner=agent, department="sales")
    roles.create_role(
        account,
        roles.RoleInput(
            key="coach", name=f"Coach {RLO}x", permissions=["contacts.view_all"]
        ),
    )
    factories.make_api_key(name=f"Site {RLO}x")
    return {"admin": admin, "agent": agent, "contact": contact, "dept": department}


def test_the_list_row_isolates_names(
    client: PortalClient, auth: Auth, evil_world: dict
) -> None:
    auth.login(evil_world["admin"])
    contact = evil_world["contact"]
    page = client.get("/contacts").get_data(as_text=True)
    row = page[page.index(f'<tr id="contact-{contact.id}"') :]
    row = row[: row.index("</tr>") + 5]
    # name, owner, department (and the owner's option, a box of its own)
    assert_isolated(row, at_least=3)
    assert f"<bdi>{EVIL}</bdi>" in row
    fragment = client.hx_get("/contacts?q=ana").get_data(as_text=True)
    assert f'<tr id="contact-{contact.id}"' in fragment
    assert_isolated(fragment, at_least=3)


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/contacts/{contact}",
        "/contacts/{contact}/timeline",
        "/admin/users",
        "/admin/teams",
        "/admin/units",
        "/admin/departments",
        "/admin/roles",
        "/admin/api-keys",
    ],
)
def test_pages_isolate_names(
    client: PortalClient, auth: Auth, evil_world: dict, url: str
) -> None:
    auth.login(evil_world["admin"])
    html = client.get(url.format(contact=evil_world["contact"].id)).text
    assert_isolated(html)


def test_a_note_and_a_status_reason_are_isolated(
    client: PortalClient, auth: Auth, evil_world: dict
) -> None:
    auth.login(evil_world["admin"])
    contact = evil_world["contact"]
    note = client.hx_post(
        f"/contacts/{contact.id}/history",
        data={"kind": "note", "body": f"called {RLO}back"},
    )
    assert_isolated(note.text)
    status = client.hx_post(
        f"/contacts/{contact.id}/status",
        data={"status": "lost", "reason": f"too {RLO}dear"},
    )
    assert_isolated(status.text, at_least=2)  # the block and its timeline entry


def _offered(message: str) -> Offer:
    factories.enable_roulette()
    agent = factories.make_user("attendant", name="Rita", departments=["sales"])
    factories.go_online(agent)
    contact = factories.make_contact(unassigned=True, name=EVIL, department="sales")
    lead = factories.make_lead(
        contact, department="sales", source=f"site {RLO}x", message=message
    )
    placed = routing.route_lead(lead.id)
    assert placed is not None
    return db.session.get(Offer, placed.offer_id)


def test_the_offer_pop_up_isolates_the_name_source_and_message(
    app: Flask, ctx: None
) -> None:
    redis = get_redis()
    listener = redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel_of(redis))
    listener.get_message(timeout=1, ignore_subscribe_messages=False)
    try:
        offer = _offered(f"call me {RLO}today")
        frames = []
        while (message := listener.get_message(timeout=1)) is not None:
            frames.append(json.loads(message["data"]))
    finally:
        listener.close()
    # As the router pushed it when it placed the offer ...
    pushed = [f["t"] for f in frames if f'id="offer-{offer.id}"' in f["t"]]
    assert pushed, frames
    assert f"New lead: <bdi>{EVIL}</bdi>" in pushed[0]
    assert_isolated(pushed[0], at_least=3)  # name, source, message
    # ... and as it is sent again on a reconnect.
    assert_isolated(push.offer_html(offer.id), at_least=3)


def test_the_end_of_an_offer_isolates_the_name(
    client: PortalClient, auth: Auth, ctx: None
) -> None:
    offer = _offered("")
    auth.login(db.session.get(factories.User, offer.agent_id))
    response = client.hx_post(f"/offers/{offer.id}/accept")
    assert response.status_code == 200
    assert f"You accepted <bdi>{EVIL}</bdi>." in response.text
    assert_isolated(response.text)
