"""The account settings page."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import Account, Unit
from portal.models.permissions import PRESETS_BY_KEY, ROLE_PRESETS
from portal.org import service as org
from portal.roles.service import RoleInput, create_role
from portal.settings.service import current_account, settings_dict
from tests import factories

BUILTIN_ROLES = [preset.key for preset in ROLE_PRESETS]

VALID = {
    "process_mode": "2",
    "roulette.enabled": ["false", "true"],  # the hidden field, then the checkbox
    "roulette.offer_timeout": "45",
    "roulette.rounds": "3",
    "roulette.capacity": "5",
    "roulette.queue_alert_minutes": "15",
    "contacts.open_too_long_hours": "24",
}
DEFAULTS = {
    "process_mode": 1,
    "roulette.enabled": False,
    "roulette.offer_timeout": 60,
    "roulette.rounds": 2,
    "roulette.capacity": 0,
    "roulette.queue_alert_minutes": 10,
    "contacts.open_too_long_hours": 48,
}


def _saved() -> dict:
    db.session.expire_all()
    return settings_dict(current_account())


@pytest.mark.parametrize("role", BUILTIN_ROLES)
@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/admin/settings"), ("POST", "/admin/settings")]
)
def test_only_roles_holding_settings_manage_get_in(
    client, auth, ctx, role, method, url
):
    auth.login(factories.make_user(role))
    send = client.get if method == "GET" else client.post
    response = send(url, data=VALID)
    if "settings.manage" in PRESETS_BY_KEY[role].permissions:
        assert response.status_code in (200, 303)
    else:
        assert response.status_code == 403
        assert _saved() == DEFAULTS


def test_among_builtin_roles_only_admin_changes_settings():
    holders = [p.key for p in ROLE_PRESETS if "settings.manage" in p.permissions]
    assert holders == ["admin"]


def test_a_custom_role_with_settings_manage_gets_in(client, auth, ctx):
    create_role(
        current_account(),
        RoleInput(key="ops", name="Ops", permissions=["settings.manage"]),
    )
    auth.login(factories.make_user("ops"))
    assert client.get("/admin/settings").status_code == 200
    assert client.get("/admin/roles").status_code == 403


def test_page_shows_the_saved_values_and_explains_each_mode(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    html = client.get("/admin/settings").get_data(as_text=True)
    assert 'name="process_mode" value="1" checked' in html
    assert (
        'name="process_mode" value="2"' in html
        and 'name="process_mode" value="3"' in html
    )
    assert "works it to the end" in html
    assert "books an appointment with a seller" in html
    assert "who receives web leads" in html
    assert 'name="roulette.offer_timeout" value="60" min="10" max="3600"' in html
    assert 'name="roulette.enabled" value="true">' in html  # not checked


def test_save_with_htmx_shows_a_flash_and_the_saved_values(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/settings", data=VALID)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<form id="settings-form"')
    assert "Settings saved." in html
    assert 'name="process_mode" value="2" checked' in html
    assert 'name="roulette.offer_timeout" value="45"' in html
    assert 'name="roulette.enabled" value="true" checked' in html
    assert '<hx-partial hx-target="#store-flow"' in html
    assert _saved() == {
        "process_mode": 2,
        "roulette.enabled": True,
        "roulette.offer_timeout": 45,
        "roulette.rounds": 3,
        "roulette.capacity": 5,
        "roulette.queue_alert_minutes": 15,
        "contacts.open_too_long_hours": 24,
    }


def test_save_without_javascript_redirects_with_a_flash(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.post("/admin/settings", data=VALID)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/settings"
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "Settings saved." in page
    assert 'name="roulette.rounds" value="3"' in page


def test_an_unticked_roulette_box_turns_the_roulette_off(client, auth, ctx):
    account = current_account()
    account.roulette_enabled = True
    db.session.commit()
    auth.login(factories.make_user("admin"))
    form = {**VALID, "roulette.enabled": "false"}  # only the hidden field
    assert client.hx_post("/admin/settings", data=form).status_code == 200
    assert _saved()["roulette.enabled"] is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("roulette.offer_timeout", "5", "from 10 to 3600"),
        ("roulette.offer_timeout", "4000", "from 10 to 3600"),
        ("roulette.offer_timeout", "sixty", "whole number"),
        ("roulette.offer_timeout", "", "whole number"),
        ("process_mode", "4", "from 1 to 3"),
        ("process_mode", "0", "from 1 to 3"),
        ("roulette.rounds", "2.5", "whole number"),
        ("roulette.rounds", "21", "from 1 to 20"),
        ("contacts.open_too_long_hours", "0", "from 1 to 2160"),
        ("roulette.enabled", "maybe", "true or false"),
    ],
)
def test_bad_values_are_refused_and_nothing_changes(
    client, auth, ctx, field, value, message
):
    auth.login(factories.make_user("admin"))
    form = {**VALID, field: value}
    response = client.hx_post("/admin/settings", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    error = html[html.index(f'id="error-{field}"') :]
    assert message in error[: error.index("</small>")]
    assert html.count('class="field-error"') == 1  # only that field
    # All or nothing: the valid fields sent along were not saved either.
    assert _saved() == DEFAULTS
    # What was typed into a number box stays there, to be corrected.
    if field not in ("process_mode", "roulette.enabled"):
        assert f'name="{field}" value="{value}"' in html


def test_bad_values_without_javascript_show_the_whole_page(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.post(
        "/admin/settings", data={**VALID, "roulette.offer_timeout": "5"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html and 'id="error-roulette.offer_timeout"' in html
    assert _saved() == DEFAULTS


def test_store_flow_hint_only_in_process_mode_1(client, auth, ctx):
    org.create_unit(current_account(), "downtown", "Downtown")
    auth.login(factories.make_user("admin"))
    hint = "Store flow only matters in process 2 or 3"
    assert hint in client.get("/admin/settings").get_data(as_text=True)
    saved = client.hx_post("/admin/settings", data=VALID).get_data(as_text=True)
    assert hint not in saved  # the refreshed store-flow section lost it
    assert hint not in client.get("/admin/settings").get_data(as_text=True)


def test_store_flow_switch_per_unit(client, auth, ctx):
    account = current_account()
    org.create_unit(account, "downtown", "Downtown")
    org.create_unit(account, "mall", "Mall")
    auth.login(factories.make_user("admin"))
    page = client.get("/admin/settings").get_data(as_text=True)
    assert 'id="store-flow-1"' in page and 'id="store-flow-2"' in page
    response = client.hx_post(
        "/admin/units/2/store-flow", data={"view": "settings", "store_flow": "1"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith('<li id="store-flow-2">')
    assert 'aria-pressed="true"' in html and "Store flow is on for Mall." in html
    db.session.expire_all()
    assert [u.store_flow for u in db.session.query(Unit).order_by(Unit.id)] == [
        False,
        True,
    ]
    plain = client.post(
        "/admin/units/2/store-flow", data={"view": "settings", "store_flow": "0"}
    )
    assert plain.status_code == 303 and plain.headers["Location"] == "/admin/settings"
    db.session.expire_all()
    assert db.session.get(Unit, 2).store_flow is False


def test_store_flow_of_another_accounts_unit_is_not_found(client, auth, ctx):
    other = Account(name="Other")
    db.session.add(other)
    db.session.flush()
    unit = Unit(account_id=other.id, key="theirs", name="Theirs")
    db.session.add(unit)
    db.session.commit()
    auth.login(factories.make_user("admin"))
    response = client.post(
        f"/admin/units/{unit.id}/store-flow",
        data={"view": "settings", "store_flow": "1"},
    )
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Unit, unit.id).store_flow is False


def test_post_without_csrf_token_is_refused(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.post("/admin/settings", data=VALID, csrf=False)
    assert response.status_code == 400
    assert _saved() == DEFAULTS


def test_builtin_roles_follow_a_changed_preset(ctx):
    """A deployment whose built-in role lost or gained a permission gets the
    preset back on the next bootstrap, without a key collision."""
    from portal.models import Role, RolePermission
    from portal.settings.service import bootstrap_account

    role = db.session.scalar(db.select(Role).where(Role.key == "attendant"))
    expected = role.permissions
    role.grants.remove(next(g for g in role.grants if g.permission == "leads.receive"))
    role.grants.append(RolePermission(permission="users.manage"))
    db.session.commit()
    bootstrap_account()
    db.session.expire_all()
    role = db.session.scalar(db.select(Role).where(Role.key == "attendant"))
    assert role.permissions == expected
