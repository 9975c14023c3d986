"""API keys: hashing, authentication, scopes, last use, the per-key rate
limit, the admin page and the CLI. Real database, real Redis."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.apikeys import service as api_keys
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.models import ApiKey
from portal.models.base import utcnow
from portal.settings.service import current_account
from tests import factories

CONTACTS = "/api/v1/contacts"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def error_of(response) -> str:
    body = response.get_json()
    assert set(body) == {"error", "message", "fields"}, body
    assert body["message"]
    return body["error"]


# ----------------------------------------------------------------- service


def test_a_key_is_random_prefixed_and_stored_only_as_its_hash(ctx):
    new = api_keys.create_key(current_account(), "Website", ["leads:write"])
    other = api_keys.create_key(current_account(), "Website", ["leads:write"])
    assert new.secret.startswith("rl_") and len(new.secret) >= 40
    assert new.secret != other.secret
    stored = db.session.get(ApiKey, new.key.id)
    assert stored.key_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    assert stored.prefix == new.secret[:11]
    assert stored.scopes == "leads:write"


def test_the_plain_key_is_nowhere_in_the_database(ctx, client):
    secret = factories.make_api_key()
    # Use it, so whatever a request writes (last use) is in there too.
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 200
    random_part = secret[len("rl_") :]
    db.session.remove()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            text = repr(tuple(row))
            assert random_part not in text, table.name
            assert random_part[11:] not in text, table.name


def test_name_and_scopes_are_validated(ctx):
    with pytest.raises(ValidationError) as caught:
        api_keys.create_key(current_account(), "  ", [])
    assert set(caught.value.fields) == {"name", "scopes"}
    with pytest.raises(ValidationError) as caught:
        api_keys.create_key(current_account(), "x" * 101, ["leads:delete"])
    assert set(caught.value.fields) == {"name", "scopes"}
    assert "leads:delete" in caught.value.fields["scopes"]
    assert db.session.scalar(select(ApiKey.id)) is None


def test_scopes_are_kept_in_canonical_order_without_repeats(ctx):
    new = api_keys.create_key(
        current_account(), "All", ["contacts:read", "leads:write", "contacts:read"]
    )
    assert new.key.scopes == "leads:write contacts:read"


def test_revoking_an_unknown_key_is_not_found(ctx):
    with pytest.raises(NotFound):
        api_keys.revoke_key(current_account(), 999)


# ---------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer rl_not-a-real-key",
        "Bearer not-even-our-format",
        "Bearer " + "rl_" + "a" * 500,
    ],
)
def test_missing_malformed_or_unknown_keys_answer_401(client, ctx, header):
    factories.make_api_key()
    headers = {"Authorization": header} if header is not None else {}
    response = client.get(CONTACTS, headers=headers)
    assert response.status_code == 401
    assert error_of(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_bearer_scheme_is_case_insensitive(client, ctx):
    secret = factories.make_api_key()
    response = client.get(CONTACTS, headers={"Authorization": f"bearer {secret}"})
    assert response.status_code == 200


def test_a_revoked_key_answers_401_at_once(client, ctx):
    secret = factories.make_api_key()
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 200
    key_id = db.session.scalar(select(ApiKey.id))
    api_keys.revoke_key(current_account(), key_id)
    response = client.get(CONTACTS, headers=bearer(secret))
    assert response.status_code == 401
    assert error_of(response) == "unauthorized"


@pytest.mark.parametrize(
    ("scope", "method", "url"),
    [
        ("leads:read", "POST", "/api/v1/leads"),
        ("contacts:read", "GET", "/api/v1/leads/1"),
        ("leads:write", "GET", CONTACTS),
    ],
)
def test_a_key_without_the_scope_answers_403(client, ctx, scope, method, url):
    secret = factories.make_api_key(scope)
    response = client.open(
        url, method=method, headers=bearer(secret), json={"name": "x"}
    )
    assert response.status_code == 403
    assert error_of(response) == "forbidden"
    assert "scope" in response.get_json()["message"]


def test_last_use_is_written_at_most_once_a_minute(client, ctx):
    secret = factories.make_api_key()
    key_id = db.session.scalar(select(ApiKey.id))

    def last_used():
        db.session.remove()
        return db.session.get(ApiKey, key_id).last_used_at

    assert last_used() is None
    client.get(CONTACTS, headers=bearer(secret))
    first = last_used()
    assert first is not None
    for _ in range(3):
        client.get(CONTACTS, headers=bearer(secret))
    assert last_used() == first  # no write per request
    long_ago = utcnow() - timedelta(minutes=2)
    db.session.execute(
        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=long_ago)
    )
    db.session.commit()
    client.get(CONTACTS, headers=bearer(secret))
    again = last_used()
    assert again is not None and again > long_ago


def test_mark_used_changes_nothing_within_the_minute(ctx):
    new = api_keys.create_key(current_account(), "K", ["leads:read"])
    now = utcnow()
    assert api_keys.mark_used(new.key, now) is True
    assert api_keys.mark_used(new.key, now + timedelta(seconds=30)) is False
    assert api_keys.mark_used(new.key, now + timedelta(seconds=61)) is True


# -------------------------------------------------------------- rate limit


def test_each_key_has_its_own_rate_limit(client, ctx, app, monkeypatch):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "3 per minute")
    first = factories.make_api_key(name="First")
    second = factories.make_api_key(name="Second")
    # The budget is the key's whole traffic, whatever the endpoint.
    assert client.get(CONTACTS, headers=bearer(first)).status_code == 200
    assert client.get("/api/v1/leads/1", headers=bearer(first)).status_code == 404
    assert client.get(CONTACTS, headers=bearer(first)).status_code == 200
    limited = client.get(CONTACTS, headers=bearer(first))
    assert limited.status_code == 429
    assert error_of(limited) == "rate_limited"
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 60
    posted = client.post(
        "/api/v1/leads", headers=bearer(first), json={"name": "A"}, csrf=False
    )
    assert posted.status_code == 429
    # Another key is not affected.
    for _ in range(3):
        assert client.get(CONTACTS, headers=bearer(second)).status_code == 200
    assert client.get(CONTACTS, headers=bearer(second)).status_code == 429


def test_health_and_the_openapi_document_need_no_key(client):
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


# -------------------------------------------------------------- admin page


SECRET_RE = re.compile(r'value="(rl_[A-Za-z0-9_\-]{40,})"')


@pytest.mark.parametrize("role", ["attendant", "manager", "reception"])
def test_only_admins_manage_keys(client, auth, ctx, role):
    auth.login(factories.make_user(role))
    assert client.get("/admin/api-keys").status_code == 403
    created = client.post(
        "/admin/api-keys", data={"name": "X", "scopes": ["leads:write"]}
    )
    assert created.status_code == 403
    assert client.post("/admin/api-keys/1/revoke").status_code == 403
    assert db.session.scalar(select(ApiKey.id)) is None
    assert "/admin/api-keys" not in client.get("/").get_data(as_text=True)


def test_admin_creates_a_key_with_htmx_sees_it_once_and_revokes_it(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    page = client.get("/admin/api-keys")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="api-key-create"' in html and "No API keys yet." in html
    assert 'href="/admin/api-keys"' in html  # in the navigation

    created = client.hx_post(
        "/admin/api-keys",
        data={"name": "Website form", "scopes": ["leads:write", "leads:read"]},
    )
    assert created.status_code == 200
    fragment = created.get_data(as_text=True)
    assert "<html" not in fragment
    assert created.headers["Cache-Control"] == "no-store"
    secret = SECRET_RE.search(fragment).group(1)
    assert "shown only this once" in fragment
    assert 'hx-target="#api-key-list"' in fragment  # the list is refreshed too
    assert "Website form" in fragment and secret[:11] in fragment
    key = db.session.scalar(select(ApiKey))
    assert key.scopes == "leads:write leads:read"
    assert key.created_by_id is not None

    # The key works at once; the page never shows it again.
    lead = client.get("/api/v1/leads/1", headers=bearer(secret))
    assert lead.status_code == 404 and error_of(lead) == "not_found"
    listing = client.get("/admin/api-keys").get_data(as_text=True)
    assert secret not in listing and secret[:11] in listing

    revoked = client.hx_post(f"/admin/api-keys/{key.id}/revoke")
    assert revoked.status_code == 200
    row = revoked.get_data(as_text=True)
    assert "<html" not in row and f'id="api-key-{key.id}"' in row
    assert "Revoked" in row and "revoked" in row  # the row and the flash
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 401


def test_admin_page_works_without_javascript(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    created = client.post(
        "/admin/api-keys", data={"name": "CRM sync", "scopes": ["contacts:read"]}
    )
    assert created.status_code == 200
    html = created.get_data(as_text=True)
    assert "<html" in html
    secret = SECRET_RE.search(html).group(1)
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 200
    key_id = db.session.scalar(select(ApiKey.id))
    revoked = client.post(f"/admin/api-keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["Location"] == "/admin/api-keys"
    assert "revoked" in client.get("/admin/api-keys").get_data(as_text=True)
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 401


def test_admin_form_errors_name_the_fields(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    response = client.hx_post("/admin/api-keys", data={"name": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert 'id="error-name"' in html and 'id="error-scopes"' in html
    assert SECRET_RE.search(html) is None
    assert db.session.scalar(select(ApiKey.id)) is None


def test_revoking_another_accounts_or_unknown_key_is_404(client, auth, ctx):
    auth.login(factories.make_user("admin"))
    assert client.hx_post("/admin/api-keys/4242/revoke").status_code == 404
    assert client.hx_post(f"/admin/api-keys/{2**31}/revoke").status_code == 404


# --------------------------------------------------------------------- CLI


def test_cli_creates_a_key_that_works_and_prints_it_once(app, client, ctx):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["api-key", "create", "Zapier", "--scope", "leads:write"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rl_")
    secret = lines[0]
    assert "not shown again" in result.stderr
    response = client.post(
        "/api/v1/leads",
        headers=bearer(secret),
        json={"name": "Ana", "email": "ana@example.com"},
        csrf=False,
    )
    assert response.status_code == 201
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 403

    listed = runner.invoke(args=["api-key", "list"])
    assert listed.exit_code == 0
    assert "Zapier" in listed.stdout and secret[:11] in listed.stdout
    assert secret not in listed.stdout
    key_id = db.session.scalar(select(ApiKey.id))
    revoked = runner.invoke(args=["api-key", "revoke", str(key_id)])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert client.get(CONTACTS, headers=bearer(secret)).status_code == 401


def test_cli_create_defaults_to_every_scope_and_refuses_bad_input(app, ctx):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-key", "create", "Everything"])
    assert result.exit_code == 0
    assert db.session.scalar(select(ApiKey.scopes)) == " ".join(api_keys.SCOPES)
    bad = runner.invoke(args=["api-key", "create", " ", "--scope", "nope"])
    assert bad.exit_code == 1
    assert "NAME" in bad.stderr and "--scope" in bad.stderr
    missing = runner.invoke(args=["api-key", "revoke", "999"])
    assert missing.exit_code == 1


@pytest.mark.parametrize(("language", "active"), [("pt_BR", "Ativa"), ("es", "Activa")])
def test_a_keys_status_agrees_with_the_key_in_gendered_languages(
    client, auth, ctx, language, active
):
    # "chave" and "clave" are feminine; the users page's "Active" (a user)
    # stays masculine.
    admin = factories.make_user("admin")
    admin.language = language
    db.session.commit()
    api_keys.create_key(current_account(), "Site", ["leads:write"])
    auth.login(admin)
    listing = client.get("/admin/api-keys").get_data(as_text=True)
    assert f">{active}</td>" in listing
    users = client.get("/admin/users").get_data(as_text=True)
    assert f">{active[:-1]}o</option>" in users
