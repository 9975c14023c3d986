"""Built-in and custom roles administration."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.extensions import db
from portal.models import Account, Role, RolePermission
from portal.models.permissions import PRESETS_BY_KEY, ROLE_PRESETS
from portal.roles import service as roles
from portal.roles.service import RoleInput
from portal.settings.service import current_account, ensure_builtin_roles
from tests import factories

BUILTIN_ROLES = [preset.key for preset in ROLE_PRESETS]


def _custom(key: str = "helper", permissions=("teams.manage",), **kwargs) -> Role:
    data = RoleInput(key=key, name=kwargs.pop("name", key.title()), **kwargs)
    data.permissions = list(permissions)
    return roles.create_role(current_account(), data)


def _role(key: str) -> Role:
    db.session.expire_all()
    return db.session.scalar(select(Role).where(Role.key == key))


def _role_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Role))


def _endpoints() -> list[tuple[str, str]]:
    # Record URLs use the custom role every test of the matrix creates (id 10,
    # after the nine built-in ones).
    return [
        ("GET", "/admin/roles"),
        ("GET", "/admin/roles/new"),
        ("POST", "/admin/roles"),
        ("GET", "/admin/roles/10/edit"),
        ("POST", "/admin/roles/10"),
        ("GET", "/admin/roles/10/delete"),
        ("POST", "/admin/roles/10/delete"),
    ]


@pytest.mark.parametrize("role", BUILTIN_ROLES)
@pytest.mark.parametrize(("method", "url"), _endpoints())
def test_only_roles_holding_roles_manage_get_in(client, auth, ctx, role, method, url):
    custom = _custom()
    assert custom.id == 10
    auth.login(factories.make_user(role))
    before = _role_count()
    send = client.get if method == "GET" else client.post
    response = send(
        url, data={"key": "x", "name": "X", "permissions": ["teams.manage"]}
    )
    if "roles.manage" in PRESETS_BY_KEY[role].permissions:
        assert response.status_code in (200, 303)
    else:
        assert response.status_code == 403
        assert _role_count() == before
        assert _role("helper").name == "Helper"


def test_among_builtin_roles_only_admin_manages_roles():
    holders = [p.key for p in ROLE_PRESETS if "roles.manage" in p.permissions]
    assert holders == ["admin"]


def test_a_custom_role_with_roles_manage_reaches_roles_but_not_settings(
    client, auth, ctx
):
    _custom("role-keeper", ["roles.manage"])
    auth.login(factories.make_user("role-keeper"))
    assert client.get("/admin/roles").status_code == 200
    assert client.get("/admin/settings").status_code == 403


# --- The list -----------------------------------------------------------------


def test_list_shows_builtin_roles_read_only_with_their_permissions(client, auth, ctx):
    _custom("helper", ["teams.manage"])
    auth.login(factories.make_user("admin"))
    html = client.get("/admin/roles").get_data(as_text=True)
    for preset in ROLE_PRESETS:
        assert str(preset.name) in html
    seller = html[html.index('id="role-5"') : html.index('id="role-6"')]
    assert "Built-in" in seller
    assert "Enter store leads" in seller  # permission labels, not keys
    assert "/admin/roles/5/edit" not in seller
    assert "/delete" not in seller
    helper = html[html.index('id="role-10"') :]
    assert "/admin/roles/10/edit" in helper and "/admin/roles/10/delete" in helper


def test_filter_as_you_type(client, auth, ctx):
    _custom("night-shift", ["teams.manage"], name="Night shift")
    auth.login(factories.make_user("admin"))
    response = client.hx_get(
        "/admin/roles?q=NIGHT", headers={"HX-Target": "div#role-list"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert "Night shift" in html and "Coordinator" not in html


def test_user_counts_are_shown(client, auth, ctx):
    admin = factories.make_user("admin")
    factories.make_user("seller", password=None)
    factories.make_user("seller", password=None)
    auth.login(admin)
    html = client.get("/admin/roles").get_data(as_text=True)
    seller = html[html.index('id="role-5"') : html.index('id="role-6"')]
    assert '<td data-label="Users">2</td>' in seller


# --- Creating -----------------------------------------------------------------


def test_create_a_custom_role_with_htmx(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    editor = client.hx_get(
        "/admin/roles/new", headers={"HX-Target": "section#role-editor"}
    )
    html = editor.get_data(as_text=True)
    assert editor.status_code == 200 and "<html" not in html
    assert html.strip().startswith('<section id="role-editor">')
    assert "<legend>Permissions</legend>" in html
    assert "<h3>Administration</h3>" in html and "Manage departments" in html

    response = client.hx_post(
        "/admin/roles",
        data={
            "key": "Deputy",
            "name": "Deputy admin",
            "permissions": ["users.manage", "departments.manage"],
            "restricted_by_default": "1",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert response.headers["HX-Push-Url"] == "/admin/roles"
    editor = html[: html.index("</section>")]
    assert editor.lstrip().startswith('<section id="role-editor">')
    assert "<form" not in editor  # the editor closed
    assert "Role Deputy admin created." in html
    assert '<hx-partial hx-target="#role-list"' in html and "Deputy admin" in html
    role = _role("deputy")
    assert role.permissions == {"users.manage", "departments.manage"}
    assert role.builtin is False and role.restricted_by_default is True


def test_cancel_closes_the_editor(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.hx_get(
        "/admin/roles", headers={"HX-Target": "section#role-editor"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith('<section id="role-editor">')
    assert "<form" not in html and "role-list" not in html


def test_create_without_javascript(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    page = client.get("/admin/roles/new")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    response = client.post(
        "/admin/roles",
        data={"key": "deputy", "name": "Deputy", "permissions": "reports.view"},
    )
    assert response.status_code == 303
    assert "Role Deputy created." in client.get("/admin/roles").get_data(as_text=True)


def test_copy_starts_a_new_role_from_another_ones_permissions(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    html = client.hx_get("/admin/roles/new?from=5").get_data(as_text=True)  # seller
    assert 'name="key" value=""' in html
    assert 'value="leads.store" checked' in html
    assert 'value="users.manage" checked' not in html


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"permissions": ["teams.manage", "contacts.nuke"]},
            "permissions",
            "contacts.nuke",
        ),
        ({"permissions": []}, "permissions", "at least one permission"),
        ({"key": "ADMIN"}, "key", "already has this key"),
        ({"key": "Seller"}, "key", "already has this key"),
        ({"key": "bad key!"}, "key", "lower-case"),
        ({"key": ""}, "key", "lower-case"),
        ({"name": ""}, "name", "Required."),
        ({"name": "n" * 201}, "name", "at most 200"),
        ({"name": "administrator"}, "name", "already has this name"),
    ],
)
def test_bad_input_is_refused_next_to_the_field(
    client, auth, ctx, data, field, message
):
    auth.login(factories.make_user("admin"))
    form = {"key": "fine", "name": "Fine", "permissions": ["teams.manage"], **data}
    before = _role_count()
    response = client.hx_post("/admin/roles", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    error = html[html.index(f'id="error-{field}"') :]
    assert message in error[: error.index("</small>")]
    assert _role_count() == before
    # What was typed and ticked stays in the form.
    if data.get("permissions"):
        assert 'value="teams.manage" checked' in html


def test_unknown_permission_is_refused_by_the_service(ctx):
    with pytest.raises(ValidationError) as raised:
        _custom("odd", ["teams.manage", "root"])
    assert "root" in raised.value.fields["permissions"]


def test_html_in_a_role_name_is_shown_escaped(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    evil = "<img src=x onerror=alert(1)>"
    client.post(
        "/admin/roles",
        data={"key": "evil", "name": evil, "permissions": "ranking.view"},
    )
    html = client.get("/admin/roles").get_data(as_text=True)
    assert evil not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


# --- Editing ------------------------------------------------------------------


def test_edit_a_custom_role_diffs_its_permissions(client, auth, ctx):
    role = _custom("helper", ["teams.manage", "units.manage"])
    auth.login(factories.make_user("admin"))
    editor = client.hx_get(f"/admin/roles/{role.id}/edit").get_data(as_text=True)
    assert "<html" not in editor and 'value="units.manage" checked' in editor
    assert "<code>helper</code>" in editor  # the key is shown, not editable
    response = client.hx_post(
        f"/admin/roles/{role.id}",
        data={
            "key": "renamed-key",
            "name": "Helper two",
            "permissions": ["units.manage", "departments.manage"],
        },
    )
    assert response.status_code == 200
    assert "Role Helper two saved." in response.get_data(as_text=True)
    role = _role("helper")
    assert role.name == "Helper two"
    assert role.permissions == {"units.manage", "departments.manage"}
    assert role.restricted_by_default is False
    assert (
        db.session.scalar(select(func.count()).where(RolePermission.role_id == role.id))
        == 2
    )


def test_saving_the_same_permissions_again_works(ctx):
    role = _custom("helper", ["teams.manage", "units.manage"])
    for _ in range(2):
        roles.update_role(
            current_account(),
            role.id,
            RoleInput(name="Helper", permissions=["units.manage", "teams.manage"]),
        )
    assert _role("helper").permissions == {"teams.manage", "units.manage"}


def test_a_changed_role_takes_effect_on_the_next_request(client, auth, ctx):
    role = _custom("helper", ["teams.manage"])
    user = factories.make_user("helper")
    auth.login(user)
    assert client.get("/admin/units").status_code == 403
    roles.update_role(
        current_account(),
        role.id,
        RoleInput(name="Helper", permissions=["units.manage"]),
    )
    assert client.get("/admin/units").status_code == 200
    assert client.get("/admin/teams").status_code == 403


def test_edit_errors_stay_in_the_editor(client, auth, ctx):
    role = _custom("helper", ["teams.manage"])
    auth.login(factories.make_user("admin"))
    response = client.hx_post(
        f"/admin/roles/{role.id}", data={"name": "", "permissions": []}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="error-name"' in html and 'id="error-permissions"' in html
    assert _role("helper").permissions == {"teams.manage"}


@pytest.mark.parametrize("key", BUILTIN_ROLES)
def test_builtin_roles_cannot_be_edited_or_deleted(client, auth, ctx, key):
    auth.login(factories.make_user("admin"))
    builtin = _role(key)
    before = builtin.permissions
    assert client.get(f"/admin/roles/{builtin.id}/edit").status_code == 403
    changed = client.hx_post(
        f"/admin/roles/{builtin.id}",
        data={"name": "Mine", "permissions": ["ranking.view"]},
    )
    assert changed.status_code == 403
    assert "Built-in roles cannot be changed" in changed.get_data(as_text=True)
    assert client.post(f"/admin/roles/{builtin.id}/delete").status_code == 403
    assert client.get(f"/admin/roles/{builtin.id}/delete").status_code == 403
    after = _role(key)
    assert after is not None and after.permissions == before
    assert after.name != "Mine"


def test_builtin_roles_are_refused_by_the_service(ctx):
    account = current_account()
    admin = _role("admin")
    with pytest.raises(Forbidden):
        roles.update_role(
            account, admin.id, RoleInput(name="X", permissions=["ranking.view"])
        )
    with pytest.raises(Forbidden):
        roles.delete_role(account, admin.id)


# --- Deleting -----------------------------------------------------------------


def test_delete_an_unused_custom_role(client, auth, ctx):
    role = _custom("helper")
    auth.login(factories.make_user("admin"))
    response = client.hx_post(f"/admin/roles/{role.id}/delete")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and html.lstrip().startswith('<div id="role-list">')
    assert "Role Helper deleted." in html
    assert _role("helper") is None
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(RolePermission)
            .where(RolePermission.role_id == role.id)
        )
        == 0
    )


def test_a_custom_role_in_use_cannot_be_deleted(client, auth, ctx):
    role = _custom("helper")
    factories.make_user("helper", password=None)
    gone = factories.make_user("helper", password=None)
    gone.status = "deleted"  # still holds the role: its history stays attributed
    db.session.commit()
    auth.login(factories.make_user("admin"))
    response = client.hx_post(f"/admin/roles/{role.id}/delete")
    assert response.status_code == 409
    assert "2 users have the role Helper" in response.get_data(as_text=True)
    assert _role("helper") is not None
    plain = client.post(f"/admin/roles/{role.id}/delete")
    assert plain.status_code == 303
    assert "2 users have the role" in client.get("/admin/roles").get_data(as_text=True)
    confirm = client.get(f"/admin/roles/{role.id}/delete").get_data(as_text=True)
    assert "2 users have the role" in confirm
    assert f'action="/admin/roles/{role.id}/delete"' not in confirm
    with pytest.raises(Conflict):
        roles.delete_role(current_account(), role.id)


def test_delete_without_javascript_asks_first(client, auth, ctx):
    role = _custom("helper")
    auth.login(factories.make_user("admin"))
    page = client.get(f"/admin/roles/{role.id}/delete").get_data(as_text=True)
    assert "Delete the role <bdi>Helper</bdi>?" in page
    assert client.post(f"/admin/roles/{role.id}/delete").status_code == 303
    assert _role("helper") is None


# --- No escalation through roles ------------------------------------------------


def test_nobody_grants_a_permission_they_do_not_hold(client, auth, ctx):
    keeper = _custom("keeper", ["roles.manage", "teams.manage"])
    auth.login(factories.make_user("keeper"))
    form = client.get("/admin/roles/new").get_data(as_text=True)
    assert 'value="users.manage" disabled' in form
    response = client.hx_post(
        "/admin/roles",
        data={
            "key": "boss",
            "name": "Boss",
            "permissions": ["teams.manage", "users.manage"],
        },
    )
    assert response.status_code == 422
    assert "users.manage" in response.get_data(as_text=True)
    assert _role("boss") is None
    # Not even into their own role.
    own = client.hx_post(
        f"/admin/roles/{keeper.id}",
        data={"name": "Keeper", "permissions": ["roles.manage", "settings.manage"]},
    )
    assert own.status_code == 422
    assert _role("keeper").permissions == {"roles.manage", "teams.manage"}
    # A role within their own permissions is fine.
    fine = client.hx_post(
        "/admin/roles",
        data={"key": "teamer", "name": "Teamer", "permissions": "teams.manage"},
    )
    assert fine.status_code == 200


def test_nobody_changes_a_role_that_holds_more_than_they_do(client, auth, ctx):
    bigger = _custom("bigger", ["users.manage", "teams.manage"])
    _custom("keeper", ["roles.manage", "teams.manage"])
    auth.login(factories.make_user("keeper"))
    edit = client.hx_post(
        f"/admin/roles/{bigger.id}",
        data={"name": "Smaller", "permissions": "teams.manage"},
    )
    assert edit.status_code == 403
    assert client.post(f"/admin/roles/{bigger.id}/delete").status_code == 403
    assert _role("bigger").permissions == {"users.manage", "teams.manage"}


# --- Other accounts, CSRF -----------------------------------------------------


def test_roles_of_other_accounts_are_not_found(client, auth, ctx):
    other = Account(name="Other")
    db.session.add(other)
    db.session.flush()
    ensure_builtin_roles(other)
    theirs = Role(account_id=other.id, key="theirs", name="Theirs")
    theirs.grants.append(RolePermission(permission="teams.manage"))
    db.session.add(theirs)
    db.session.commit()
    auth.login(factories.make_user("admin"))
    assert client.get(f"/admin/roles/{theirs.id}/edit").status_code == 404
    assert client.get(f"/admin/roles/new?from={theirs.id}").status_code == 404
    assert client.get(f"/admin/roles/{theirs.id}/delete").status_code == 404
    updated = client.post(
        f"/admin/roles/{theirs.id}",
        data={"name": "Mine", "permissions": "teams.manage"},
    )
    assert updated.status_code == 404
    assert client.post(f"/admin/roles/{theirs.id}/delete").status_code == 404
    assert _role("theirs").name == "Theirs"
    html = client.get("/admin/roles").get_data(as_text=True)
    assert "Theirs" not in html
    with pytest.raises(NotFound):
        roles.get_role(current_account(), theirs.id)


def test_post_without_csrf_token_is_refused(client, auth, ctx):
    role = _custom("helper")
    auth.login(factories.make_user("admin"))
    before = _role_count()
    created = client.post(
        "/admin/roles",
        data={"key": "x", "name": "X", "permissions": "teams.manage"},
        csrf=False,
    )
    assert created.status_code == 400
    assert client.post(f"/admin/roles/{role.id}/delete", csrf=False).status_code == 400
    assert _role_count() == before
