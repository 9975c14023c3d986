"""The roulette's account settings: capacity and the queue alert, beside the
CONTRACT keys, on the settings page and through `flask settings set`."""

from __future__ import annotations

import re

import pytest

from portal.errors import ValidationError
from portal.extensions import db
from portal.settings.service import current_account, settings_dict, update_settings
from tests import factories

FORM = {
    "process_mode": "1",
    "roulette.enabled": ["false", "true"],
    "roulette.offer_timeout": "30",
    "roulette.rounds": "2",
    "roulette.capacity": "3",
    "roulette.queue_alert_minutes": "20",
    "contacts.open_too_long_hours": "48",
}


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def _saved() -> dict:
    db.session.expire_all()
    return settings_dict(current_account())


def test_new_settings_have_their_defaults(ctx):
    saved = _saved()
    assert saved["roulette.capacity"] == 0
    assert saved["roulette.queue_alert_minutes"] == 10


def test_the_page_groups_the_roulette_settings_in_order_with_help(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    html = client.get("/admin/settings").get_data(as_text=True)
    roulette = html[html.index("<legend>Lead roulette</legend>") :]
    roulette = roulette[: roulette.index("</fieldset>")]
    names = re.findall(r'name="(roulette\.[a-z_]+)"', roulette)
    assert list(dict.fromkeys(names)) == [
        "roulette.enabled",
        "roulette.offer_timeout",
        "roulette.rounds",
        "roulette.capacity",
        "roulette.queue_alert_minutes",
    ]
    assert 'name="roulette.capacity" value="0" min="0" max="1000"' in roulette
    assert 'name="roulette.queue_alert_minutes" value="10" min="1" max="1440"' in (
        roulette
    )
    assert "Open leads an agent may hold (0 = no cap)" in roulette
    # Each number says what it does, tied to its field for screen readers.
    assert 'aria-describedby="help-roulette.capacity"' in roulette
    help_text = roulette[roulette.index('id="help-roulette.capacity"') :]
    assert "skipped until they answer one" in help_text[: help_text.index("</small>")]
    assert "From 0 to 1000." in help_text[: help_text.index("</small>")]
    # Working hours live with the departments; the page says where.
    assert 'href="/admin/departments"' in roulette


def test_saving_the_page_stores_every_roulette_setting(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/settings", data=FORM)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="roulette.capacity" value="3"' in html
    saved = _saved()
    assert saved["roulette.enabled"] is True
    assert saved["roulette.offer_timeout"] == 30
    assert saved["roulette.capacity"] == 3
    assert saved["roulette.queue_alert_minutes"] == 20


def test_zero_capacity_means_no_cap_and_is_accepted(client, auth, ctx):
    account = current_account()
    account.roulette_capacity = 7
    db.session.commit()
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        "/admin/settings", data={**FORM, "roulette.capacity": "0"}
    )
    assert response.status_code == 200
    assert _saved()["roulette.capacity"] == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("roulette.capacity", "-1", "from 0 to 1000"),
        ("roulette.capacity", "1001", "from 0 to 1000"),
        ("roulette.capacity", "lots", "whole number"),
        ("roulette.capacity", "", "whole number"),
        ("roulette.queue_alert_minutes", "0", "from 1 to 1440"),
        ("roulette.queue_alert_minutes", "1441", "from 1 to 1440"),
        ("roulette.queue_alert_minutes", "1.5", "whole number"),
    ],
)
def test_a_bad_value_names_its_field_and_saves_nothing(
    client, auth, ctx, field, value, message
):
    before = _saved()
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/settings", data={**FORM, field: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    error = html[html.index(f'id="error-{field}"') :]
    assert message in error[: error.index("</small>")]
    assert html.count('class="field-error"') == 1
    assert f'name="{field}" value="{value}"' in html  # kept, to be corrected
    assert f'aria-describedby="help-{field} error-{field}"' in html
    # All or nothing: the valid values sent along were not applied either.
    assert _saved() == before


def test_a_bad_value_without_javascript_shows_the_page(client, auth, ctx):
    before = _saved()
    auth.login(factories.make_user("admin"))
    response = client.post(
        "/admin/settings", data={**FORM, "roulette.queue_alert_minutes": "0"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html and 'id="error-roulette.queue_alert_minutes"' in html
    assert _saved() == before


def test_the_service_names_every_bad_key_and_applies_nothing(ctx):
    account = current_account()
    with pytest.raises(ValidationError) as refused:
        update_settings(
            account,
            {
                "roulette.offer_timeout": "90",
                "roulette.capacity": "5000",
                "roulette.queue_alert_minutes": "never",
            },
        )
    assert set(refused.value.fields) == {
        "roulette.capacity",
        "roulette.queue_alert_minutes",
    }
    db.session.rollback()
    saved = _saved()
    assert saved["roulette.offer_timeout"] == 60
    assert saved["roulette.capacity"] == 0


@pytest.mark.parametrize(
    ("key", "raw", "stored"),
    [
        ("roulette.capacity", "12", 12),
        ("roulette.capacity", "0", 0),
        ("roulette.queue_alert_minutes", "1440", 1440),
        # The CONTRACT keys keep working beside them.
        ("roulette.enabled", "true", True),
        ("roulette.offer_timeout", "120", 120),
        ("roulette.rounds", "5", 5),
    ],
)
def test_cli_sets_each_roulette_key(app, cli, key, raw, stored):
    result = cli.invoke(args=["settings", "set", key, raw])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{key} = {raw}"
    with app.app_context():
        assert settings_dict(current_account())[key] == stored
    shown = cli.invoke(args=["settings", "show"]).output.splitlines()
    assert f"{key} = {raw}" in shown


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("roulette.capacity", "-1", "from 0 to 1000"),
        ("roulette.capacity", "ten", "whole number"),
        ("roulette.queue_alert_minutes", "0", "from 1 to 1440"),
        ("roulette.queue_alert_minutes", "2000", "from 1 to 1440"),
    ],
)
def test_cli_refuses_bad_values_naming_the_key(app, cli, key, raw, message):
    with app.app_context():
        before = settings_dict(current_account())
    result = cli.invoke(args=["settings", "set", key, raw])
    assert result.exit_code == 1
    assert f"Error: {key}:" in result.output
    assert message in result.output
    with app.app_context():
        assert settings_dict(current_account()) == before


def test_capacity_set_here_is_what_routing_applies(ctx):
    """The setting reaches the roulette: an agent at the cap is skipped."""
    from portal.models import Lead
    from portal.roulette import decisions, routing

    factories.enable_roulette(**{"roulette.capacity": "1"})
    agent = factories.make_user("attendant", departments=["sales"])
    factories.go_online(agent)
    first = factories.make_lead(department="sales")
    placed = routing.route_lead(first.id)
    assert placed is not None and placed.agent_id == agent.id
    decisions.accept(agent, placed.offer_id)
    second = factories.make_lead(department="sales")
    assert routing.route_lead(second.id) is None
    waiting = db.session.get(Lead, second.id, populate_existing=True)
    assert waiting.state == "queued"
    assert [c["reason"] for c in waiting.routing] == ["capacity"]
