"""Configuration read from the environment, with embedded defaults.

Every setting a deployment may change is an environment variable listed in the
README; nothing secret is hard-coded. `SECRET_KEY` is generated into the
instance folder on first start so that sessions survive restarts.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("PORTAL_INSTANCE", Path.cwd() / "instance"))


def _secret_key(instance: Path) -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _env_number(
    name: str, default: str, kind: type[int] | type[float] = int, minimum: float = 0
) -> int | float:
    """A numeric environment variable; a bad value stops the start with an
    error naming the variable, instead of Python's bare conversion error."""
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what} of at least {minimum}; got {raw!r}")
    return value


def _env_delays(name: str, default: str) -> list[int]:
    """Comma-separated whole seconds, e.g. "10,60"."""
    raw = os.environ.get(name, default)
    try:
        delays = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        delays = [-1]
    if any(delay < 0 for delay in delays):
        raise ValueError(
            f"{name} must be whole seconds separated by commas; got {raw!r}"
        )
    return delays


def _database_url(instance: Path) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        # Operators often paste the libpq form; we speak psycopg 3.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url
    return f"sqlite:///{instance / 'roleta.db'}"


def build_config(overrides: dict | None = None) -> dict:
    """Return the configuration mapping for `create_app`."""
    instance = Path((overrides or {}).get("INSTANCE_PATH") or INSTANCE_DIR).resolve()
    cfg: dict = {
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": _database_url(instance),
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        # A pooled connection idle this long is pinged before use (see
        # portal.database.ping_when_idle); 0 pings every checkout.
        "DATABASE_PING_IDLE_SECONDS": _env_number(
            "DATABASE_PING_IDLE_SECONDS", "1", float
        ),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "PORTAL_PORT": _env_number("PORTAL_PORT", "5000", minimum=1),
        "PUBLIC_URL": os.environ.get("PUBLIC_URL") or None,
        "MAIL_URL": os.environ.get("MAIL_URL") or None,
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Roleta <no-reply@localhost>"),
        "OUTBOX_DIR": str(instance / "outbox"),
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "roleta"),
        # A background job whose worker vanished moves again within this
        # many seconds of a live worker (its lease and the watchdog's tick
        # follow from it; see portal.background.lease).
        "JOB_RESUME_SECONDS": _env_number("JOB_RESUME_SECONDS", "30", float, 3),
        # Tries a job gets for real errors before it stops as failed, and the
        # pauses between them (seconds, comma-separated).
        "JOB_TRIES": _env_number("JOB_TRIES", "3", minimum=1),
        "JOB_RETRY_DELAYS": _env_delays("JOB_RETRY_DELAYS", "10,60"),
        # A job that took its worker down this many times (out of memory, say)
        # stops as failed instead of killing the next one.
        "JOB_MAX_RESUMES": _env_number("JOB_MAX_RESUMES", "20", minimum=1),
        # An all-day shift must not meet an expired form.
        "WTF_CSRF_TIME_LIMIT": int(timedelta(hours=24).total_seconds()),
        "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"],
        "ACTIVATION_MAX_AGE": int(timedelta(days=3).total_seconds()),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("COOKIE_SECURE", "auto"),
        "REMEMBER_COOKIE_DURATION": timedelta(days=14),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": True,
        "LOGIN_FAILURE_LIMIT": "5 per minute",
        # Requests per API key, across all API endpoints (Flask-Limiter syntax).
        "API_RATE_LIMIT": os.environ.get("API_RATE_LIMIT", "1200 per minute"),
        # Argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory).
        "PASSWORD_HASH_TIME_COST": _env_number(
            "PASSWORD_HASH_TIME_COST", "3", minimum=1
        ),
        "PASSWORD_HASH_MEMORY_KIB": _env_number(
            "PASSWORD_HASH_MEMORY_KIB", str(64 * 1024), minimum=8
        ),
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent / "translations"),
        "LANGUAGES": {
            "en": "English",
            "pt_BR": "Português (Brasil)",
            "es": "Español",
            "ru": "Русский",
        },
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        # Keep-alive pings through proxies and NATs; agents send tiny messages.
        "SOCK_SERVER_OPTIONS": {"ping_interval": 20, "max_message_size": 4096},
    }
    uri = cfg["SQLALCHEMY_DATABASE_URI"]
    if not (uri.startswith("sqlite") and ":memory:" in uri):
        # Each gunicorn thread may hold a connection for a request; size the
        # pool to the threads that query at once (SQLAlchemy's defaults:
        # 5 + 10), within PostgreSQL's max_connections. A SQLite file is
        # pooled the same way; only an in-memory one takes no size.
        cfg["SQLALCHEMY_ENGINE_OPTIONS"].update(
            pool_size=_env_number("DATABASE_POOL_SIZE", "5", minimum=1),
            max_overflow=_env_number("DATABASE_MAX_OVERFLOW", "10"),
        )
    if overrides:
        cfg.update(overrides)
    secure = cfg["SESSION_COOKIE_SECURE"]
    if isinstance(secure, str):
        # "auto": Secure when the public URL is https; plain http on a laptop
        # would otherwise never keep a session.
        public = cfg.get("PUBLIC_URL") or ""
        cfg["SESSION_COOKIE_SECURE"] = (
            public.startswith("https://") if secure == "auto" else secure == "1"
        )
    return cfg
