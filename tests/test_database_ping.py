"""Pooled connections are checked before use only after sitting idle
(portal/database.py, ping_when_idle): a connection the database dropped
meanwhile is replaced, while one in use a moment ago costs no round trip.
Runs on the suite's database (SQLite or PostgreSQL), with an engine of its
own holding a single pooled connection."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from portal.database import ping_when_idle


@pytest.fixture
def make_engine(app):
    engines = []

    def make(idle_seconds: float):
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        engine = create_engine(url, pool_size=1, max_overflow=0)
        ping_when_idle(engine, idle_seconds)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def _drop_behind_the_pools_back(engine) -> int:
    """Use the pool's one connection, then have the database end it (a
    restart, a proxy timing out) while it sits in the pool. Returns the id
    of the DBAPI connection that was dropped."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        pid = None
        if engine.dialect.name == "postgresql":
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    if pid is None:
        dbapi.close()  # SQLite has no server: the file handle goes instead
    else:
        killer = create_engine(engine.url, poolclass=NullPool)
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
    return id(dbapi)


def test_a_connection_dropped_while_idle_is_replaced(make_engine):
    engine = make_engine(idle_seconds=0.05)
    dropped = _drop_behind_the_pools_back(engine)
    time.sleep(0.1)

    with engine.connect() as conn:
        assert conn.execute(text("SELECT 41 + 1")).scalar() == 42
        assert id(conn.connection.dbapi_connection) != dropped


def test_a_connection_used_a_moment_ago_is_not_pinged(make_engine):
    # The same drop, checked out again within the idle window: no ping, so
    # the dead connection is handed out and its first statement fails.
    # (That is the price of skipping the round trip; SQLAlchemy then
    # discards it, and the next checkout gets a live one.)
    engine = make_engine(idle_seconds=60)
    dropped = _drop_behind_the_pools_back(engine)

    with pytest.raises(DBAPIError), engine.connect() as conn:
        assert id(conn.connection.dbapi_connection) == dropped
        conn.execute(text("SELECT 1"))

    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
