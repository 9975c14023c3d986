from __future__ import annotations

import re
import time

import pytest

from portal.extensions import db
from portal.mail import outbox_messages
from portal.models import User
from tests import factories


def test_login_redirects_home_with_303(client, auth, ctx):
    user = factories.make_user("attendant")
    response = auth.login(user)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert user.name in home.get_data(as_text=True)


def test_email_is_case_insensitive_at_login(client, auth, ctx):
    factories.make_user("admin", email="boss@example.com")
    assert auth.login("  BOSS@Example.COM ").status_code == 303


def test_wrong_password_is_refused_without_saying_which_part(client, auth, ctx):
    user = factories.make_user("attendant")
    response = auth.login(user, "not the password at all")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out


def test_password_is_stored_as_argon2id(ctx):
    user = factories.make_user("attendant")
    assert user.password_hash.startswith("$argon2id$")
    assert factories.PASSWORD not in user.password_hash


def test_sixth_failure_in_a_minute_is_rate_limited(client, auth, ctx):
    user = factories.make_user("attendant")
    for _ in range(5):
        assert auth.login(user, "wrong password!!").status_code == 401
    sixth = auth.login(user, "wrong password!!")
    assert sixth.status_code == 429
    assert "Too many attempts" in sixth.get_data(as_text=True)
    assert int(sixth.headers["Retry-After"]) > 0
    # Another address is not locked out by this one's failures.
    other = factories.make_user("attendant")
    assert auth.login(other).status_code == 303


def test_successful_logins_do_not_count_as_failures(client, auth, ctx):
    user = factories.make_user("attendant")
    for _ in range(7):
        assert auth.login(user).status_code == 303
        auth.logout()


def test_post_without_csrf_token_is_refused(client, ctx):
    user = factories.make_user("attendant")
    response = client.post(
        "/login", data={"email": user.email, "password": factories.PASSWORD}, csrf=False
    )
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_login_renews_the_session(client, auth, ctx):
    user = factories.make_user("attendant")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login(user)
    with client.session_transaction() as session:
        assert "planted" not in session


def test_logout_ends_the_session(client, auth, ctx):
    auth.login(factories.make_user("attendant"))
    assert auth.logout().status_code == 303
    assert client.get("/").status_code == 302


def test_remember_cookie_flags_are_explicit(client, ctx):
    user = factories.make_user("attendant")
    response = client.post(
        "/login",
        data={"email": user.email, "password": factories.PASSWORD, "remember": "1"},
    )
    cookie = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_")
    )
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_suspension_signs_the_user_out_of_every_session(app, auth, ctx):
    user = factories.make_user("attendant")
    other_device = app.test_client()
    auth.login(user)
    other_device.post(
        "/login",
        data={"email": user.email, "password": factories.PASSWORD, "remember": "1"},
    )
    assert auth.client.get("/").status_code == 200
    assert other_device.get("/").status_code == 200

    from portal.users.service import suspend_user

    suspend_user(user)
    assert auth.client.get("/").status_code == 302
    assert other_device.get("/").status_code == 302
    assert auth.login(user).status_code == 401


def test_open_redirect_after_login_is_refused(client, ctx):
    user = factories.make_user("attendant")
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": factories.PASSWORD,
            "next": "//evil.example/",
        },
    )
    assert response.headers["Location"] == "/"


def _activation_link(email: str) -> str:
    (mail,) = outbox_messages(to=email)
    match = re.search(r"http://portal\.test(/activate/\S+)", mail.get_content())
    assert match, mail.get_content()
    return match.group(1)


def test_activation_link_sets_the_password_once(client, auth, ctx, run_jobs):
    user = factories.make_user("attendant", email="new@example.com", password=None)
    assert user.password_hash is None
    assert run_jobs() == 1
    link = _activation_link("new@example.com")

    page = client.get(link)
    assert page.status_code == 200
    assert "Set your password" in page.get_data(as_text=True)

    weak = client.post(link, data={"password": "short", "confirm": "short"})
    assert weak.status_code == 422
    assert "at least 12" in weak.get_data(as_text=True)

    done = client.post(
        link,
        data={"password": "a long enough secret", "confirm": "a long enough secret"},
    )
    assert done.status_code == 303
    assert auth.login("new@example.com", "a long enough secret").status_code == 303

    auth.logout()
    reused = client.post(
        link, data={"password": "another long secret", "confirm": "another long secret"}
    )
    assert reused.status_code == 410
    assert "already used" in reused.get_data(as_text=True)
    assert auth.login("new@example.com", "another long secret").status_code == 401


def test_activation_job_run_twice_sends_one_mail(ctx, run_jobs):
    from portal.queue import enqueue

    user = factories.make_user("attendant", email="twice@example.com", password=None)
    enqueue("jobs.mail.send_activation", user.id, user.activation_nonce)
    assert run_jobs() == 2
    assert len(outbox_messages(to="twice@example.com")) == 1


def test_expired_activation_link_changes_nothing(app, client, ctx, run_jobs):
    user = factories.make_user("attendant", email="late@example.com", password=None)
    run_jobs()
    link = _activation_link("late@example.com")
    app.config["ACTIVATION_MAX_AGE"] = 1
    try:
        time.sleep(2.1)
        response = client.post(
            link,
            data={
                "password": "a long enough secret",
                "confirm": "a long enough secret",
            },
        )
    finally:
        app.config["ACTIVATION_MAX_AGE"] = 3 * 86400
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).password_hash is None


def test_tampered_activation_link_is_refused(client, ctx):
    response = client.get("/activate/not-a-real-token")
    assert response.status_code == 410
    assert "not valid" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/admin/users"])
def test_security_headers_on_pages(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe" not in directives.get("script-src-attr", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_csrf_meta_tag_on_every_page(client):
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', html)


def test_health_names_what_is_up(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"db": "ok", "redis": "ok"}


def test_signed_out_htmx_request_navigates_the_window_to_login(client):
    response = client.hx_get("/admin/users")
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=/admin/users")
    assert b"<html" not in response.data


def test_signed_out_page_request_redirects_to_login(client):
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_production_password_cost_is_argon2_cffi_default(monkeypatch, tmp_path):
    from argon2 import PasswordHasher

    from portal.config import build_config

    monkeypatch.delenv("PASSWORD_HASH_TIME_COST")
    monkeypatch.delenv("PASSWORD_HASH_MEMORY_KIB")
    config = build_config({"INSTANCE_PATH": str(tmp_path)})
    default = PasswordHasher()
    assert config["PASSWORD_HASH_TIME_COST"] == default.time_cost
    assert config["PASSWORD_HASH_MEMORY_KIB"] == default.memory_cost


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_PING_IDLE_SECONDS", "soon"),
        ("DATABASE_PING_IDLE_SECONDS", "-1"),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_MAX_OVERFLOW", "ten"),
        ("PORTAL_PORT", "80.5"),
    ],
)
def test_a_bad_number_in_the_environment_names_the_variable(
    monkeypatch, tmp_path, name, value
):
    from portal.config import build_config

    monkeypatch.setenv("DATABASE_URL", "postgresql://roleta@db/roleta")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{name} must be .*got '{value}'"):
        build_config({"INSTANCE_PATH": str(tmp_path)})


def test_the_ping_window_is_read_from_the_environment(monkeypatch, tmp_path):
    from portal.config import build_config

    monkeypatch.setenv("DATABASE_PING_IDLE_SECONDS", "2.5")
    config = build_config({"INSTANCE_PATH": str(tmp_path)})
    assert config["DATABASE_PING_IDLE_SECONDS"] == 2.5


def test_the_database_pool_is_sized_from_the_environment(monkeypatch, tmp_path):
    from portal.config import build_config

    monkeypatch.setenv("DATABASE_URL", "postgresql://roleta@db/roleta")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "40")
    monkeypatch.setenv("DATABASE_MAX_OVERFLOW", "20")
    options = build_config({"INSTANCE_PATH": str(tmp_path)})[
        "SQLALCHEMY_ENGINE_OPTIONS"
    ]
    assert options["pool_size"] == 40
    assert options["max_overflow"] == 20

    # A SQLite file is pooled alike (SQLAlchemy's QueuePool, 5 + 10 unless
    # told): 250 threads would otherwise queue for 15 connections.
    monkeypatch.delenv("DATABASE_URL")
    options = build_config({"INSTANCE_PATH": str(tmp_path)})[
        "SQLALCHEMY_ENGINE_OPTIONS"
    ]
    assert (options["pool_size"], options["max_overflow"]) == (40, 20)

    # An in-memory SQLite database takes no pool size: the options are left out.
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    options = build_config({"INSTANCE_PATH": str(tmp_path)})[
        "SQLALCHEMY_ENGINE_OPTIONS"
    ]
    assert "pool_size" not in options
