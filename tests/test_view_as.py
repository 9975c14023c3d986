"""Viewing the portal as another user (CONTRACT "Users"): the viewed user's
pages with a banner, every other POST 403, no live connection, and the end
of it (asked, or because what allowed it is gone)."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import Account, User
from portal.users.service import suspend_user
from tests import factories


@pytest.fixture
def people(ctx):
    admin = factories.make_user("admin", name="Ada Admin")
    agent = factories.make_user("attendant", name="Ana Agent")
    return admin, agent


def test_an_admin_views_as_an_agent_read_only(client, auth, people):
    admin, agent = people
    auth.login(admin)
    listing = client.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{agent.id}/view-as"' in listing
    response = client.post(f"/admin/users/{agent.id}/view-as")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")

    home = client.get("/").get_data(as_text=True)
    assert 'id="view-as-banner"' in home
    banner = home[home.index('id="view-as-banner"') :][:600]
    assert (
        "<bdi>Ada Admin</bdi>, you are viewing the portal as <bdi>Ana Agent</bdi>"
        in banner
    )
    assert "Hello, <bdi>Ana Agent</bdi>" in home
    assert 'id="live"' not in home  # no socket: the agent stays offline
    assert 'href="/admin/users"' not in home  # the agent's menu
    assert client.get("/admin/users").status_code == 403  # as the agent
    assert 'id="view-as-banner"' in client.get("/tasks").get_data(as_text=True)

    refused = client.post("/tasks", data={"title": "x", "assignee": f"user:{agent.id}"})
    assert refused.status_code == 403
    assert "nothing can be changed" in refused.get_data(as_text=True)
    handshake = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Origin": "http://localhost",
    }
    assert client.get("/ws", headers=handshake).status_code == 403

    ended = client.post("/view-as/end")
    assert ended.status_code == 303 and ended.headers["Location"].endswith(
        "/admin/users"
    )
    back = client.get("/").get_data(as_text=True)
    assert "Hello, <bdi>Ada Admin</bdi>" in back and 'id="view-as-banner"' not in back


def test_who_and_whom(client, auth, people):
    admin, agent = people
    other = Account(name="Other")
    db.session.add(other)
    db.session.commit()
    stranger = User(
        account_id=other.id,
        email="s@other.example",
        name="Stranger",
        role_id=agent.role_id,
    )
    db.session.add(stranger)
    db.session.commit()
    auth.login(admin)
    assert client.post(f"/admin/users/{admin.id}/view-as").status_code == 404
    assert client.post(f"/admin/users/{stranger.id}/view-as").status_code == 404
    assert client.post("/admin/users/424242/view-as").status_code == 404
    suspend_user(agent)
    assert client.post(f"/admin/users/{agent.id}/view-as").status_code == 404
    auth.login(factories.make_user("manager"))
    assert client.post(f"/admin/users/{admin.id}/view-as").status_code == 403


def test_the_view_ends_when_the_viewed_user_is_suspended(client, auth, people):
    admin, agent = people
    auth.login(admin)
    client.post(f"/admin/users/{agent.id}/view-as")
    assert "Hello, <bdi>Ana Agent</bdi>" in client.get("/").get_data(as_text=True)
    suspend_user(db.session.get(User, agent.id))
    db.session.expire_all()
    page = client.get("/").get_data(as_text=True)
    assert "Hello, <bdi>Ada Admin</bdi>" in page and 'id="view-as-banner"' not in page


def test_signing_out_while_viewing_as_signs_out(client, auth, people):
    admin, agent = people
    auth.login(admin)
    client.post(f"/admin/users/{agent.id}/view-as")
    assert client.post("/logout").status_code == 303
    assert client.get("/").status_code == 302  # to sign in
