"""Engine tuning per database, and the SQLite write gate.

SQLite lets one connection write at a time. A writer that finds the file
locked waits in SQLite's busy handler, which sleeps between retries (1, 2,
5, ... up to 100 ms), so under a burst of writes from many threads most of
the time goes to sleeping while the lock sits free: a lead POST that needs
2 ms of writing answered in 1.3 s at p99. The gate queues writers instead:
one writing thread per process (a lock the others block on and are woken
from at once), and one process per database file (an flock on a file
beside it, polled at sub-millisecond steps), taken before a transaction's
first write and released when it commits or rolls back. SQLite's own lock
still decides who writes; the gate only makes the wait short. A writer
that cannot pass the gate within the busy timeout goes on without it and
falls back to SQLite's busy handler, so the gate never turns a slow write
into a hang.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import Column, bindparam, event, exc
from sqlalchemy.engine import Connection, Dialect, Engine, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor, ExecutionContext
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.elements import BindParameter

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
# The statements that make pysqlite open a write transaction (Python's
# sqlite3 begins one implicitly before them); a plain SELECT never waits.
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Polling the file lock: short first, since a write holds it for about a
# millisecond, and never longer than this between tries.
POLL_FIRST_S = 0.0001
POLL_MAX_S = 0.001
# SQLite's own WAL checkpoint runs inside a commit, and so inside the gate,
# where its fsync held every writer up (offers stalled for 200-400 ms). The
# gated connections checkpoint themselves instead, after every this many
# commits of the process, once they have let go of the gate.
CHECKPOINT_EVERY = 200


class WriteGate:
    """One writer at a time per database file, across threads and processes."""

    def __init__(self, path: str) -> None:
        self.lock_path = f"{path}-writers"
        self._reset()

    def _reset(self) -> None:
        # Also run in a forked child: the parent's lock state and open file
        # (an flock belongs to the open file, shared across a fork) are not
        # the child's.
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._commits = 0

    def checkpoint_due(self) -> bool:
        """Count a commit; True once every CHECKPOINT_EVERY commits."""
        self._commits += 1  # racy by design: an approximate count will do
        return self._commits % CHECKPOINT_EVERY == 0

    def acquire(self, timeout: float = BUSY_TIMEOUT_S) -> bool:
        """True when this thread may write now; False after `timeout` (the
        caller then writes without the gate)."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            pause = POLL_FIRST_S
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, POLL_MAX_S)
        except BaseException:
            self._threads.release()
            raise
        self._threads.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_gates: dict[str, WriteGate] = {}
_gates_lock = threading.Lock()


def gate_for(path: str) -> WriteGate:
    with _gates_lock:
        gate = _gates.get(path)
        if gate is None:
            gate = _gates[path] = WriteGate(path)
        return gate


def _after_fork() -> None:
    global _gates_lock
    _gates_lock = threading.Lock()
    for gate in _gates.values():
        gate._reset()


os.register_at_fork(after_in_child=_after_fork)


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that lets go of its write gate when its
    transaction ends (commit, rollback or close)."""

    gate: WriteGate | None = None
    holds_gate = False

    def take_gate(self) -> None:
        if self.gate is None or self.holds_gate:
            return
        if self.gate.acquire():
            self.holds_gate = True
        else:
            log.warning(
                "SQLite write gate busy for %.0f s; writing without it", BUSY_TIMEOUT_S
            )

    def drop_gate(self) -> None:
        if self.holds_gate:
            self.holds_gate = False
            self.gate.release()

    def commit(self) -> None:
        wrote = self.holds_gate
        try:
            super().commit()
        finally:
            self.drop_gate()
        if wrote and self.gate.checkpoint_due():
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers
        (PASSIVE); a busy checkpoint elsewhere just means later."""
        try:
            self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError:
            log.debug("WAL checkpoint skipped", exc_info=True)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.drop_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.drop_gate()


def _is_write(statement: str) -> bool:
    return statement.lstrip()[:7].upper().startswith(WRITES)


@event.listens_for(Engine, "do_connect")
def _sqlite_gated_class(
    dialect: Dialect, conn_rec: ConnectionPoolEntry, cargs: list, cparams: dict
) -> None:
    if dialect.name == "sqlite" and dialect.driver == "pysqlite":
        cparams.setdefault("factory", GatedConnection)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    # Foreign keys for ON DELETE CASCADE; WAL so readers never wait for the
    # writer; a busy timeout so concurrent writers queue instead of failing.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    path = next(
        (row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"),
        "",
    )
    if isinstance(dbapi_connection, GatedConnection) and path:
        # A file database: its writers share a gate (an in-memory one has
        # a single connection and nothing to queue for), and checkpoint
        # outside it (see CHECKPOINT_EVERY).
        dbapi_connection.gate = gate_for(path)
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


@event.listens_for(Engine, "before_cursor_execute")
def _take_gate(
    conn: Connection,
    cursor: DBAPICursor,
    statement: str,
    parameters: Any,
    context: ExecutionContext | None,
    executemany: bool,
) -> None:
    dbapi = cursor.connection
    if (
        isinstance(dbapi, GatedConnection)
        and dbapi.gate is not None
        and not dbapi.holds_gate
        and _is_write(statement)
    ):
        dbapi.take_gate()


def _drop_gate_outside_transaction(dbapi: DBAPIConnection | None) -> None:
    # A write in autocommit mode (or one that failed or opened no
    # transaction) has already released SQLite's lock; release the gate too.
    if (
        isinstance(dbapi, GatedConnection)
        and dbapi.holds_gate
        and not dbapi.in_transaction
    ):
        dbapi.drop_gate()


@event.listens_for(Engine, "after_cursor_execute")
def _after_write(
    conn: Connection,
    cursor: DBAPICursor,
    statement: str,
    parameters: Any,
    context: ExecutionContext | None,
    executemany: bool,
) -> None:
    _drop_gate_outside_transaction(cursor.connection)


@event.listens_for(Engine, "handle_error")
def _after_failed_write(context: ExceptionContext) -> None:
    cursor = getattr(context.execution_context, "cursor", None)
    _drop_gate_outside_transaction(getattr(cursor, "connection", None))


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat idle for
    `idle_seconds` or more, instead of on every checkout (pool_pre_ping).

    A connection that was in use a moment ago is almost surely alive, and
    the ping is one more round trip to PostgreSQL in every transaction
    (a routing pass has two). One that idled may have been dropped by a
    database restart or a proxy: it is pinged, and replaced when dead.
    A restart during traffic fails the few transactions that were using
    connections at that moment, as it would with any ping, and SQLAlchemy
    then discards the pool's older connections.
    """

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
    ) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise exc.DisconnectionError(str(error)) from error


def reads_outside_transaction(session: Session | scoped_session) -> None:
    """Run the session's next statements, until it commits or rolls back,
    outside a transaction on PostgreSQL: a pass of reads then costs no BEGIN
    and ROLLBACK round trips. Each statement sees what was committed when it
    ran, as in a READ COMMITTED transaction, and as SQLite's reads do (its
    driver opens a transaction only before a write), so SQLite is left as
    it is. Each write commits by itself until this ends: fine for a write
    that is one statement (the lead intake's), wrong for several that must
    land together, which must end this first (commit or roll back). No-op
    inside a transaction already begun."""
    if isinstance(session, scoped_session):
        session = session()  # the thread's own session
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def column_param(column: Column, prefix: str) -> BindParameter:
    """A bind parameter typed as `column`, named `prefix` + its name, for a
    statement built once and run with a dict of values.

    The prefix matters: SQLAlchemy adds a key of that dict that names a
    column of a table the statement writes to that INSERT or UPDATE (one in
    a WITH included), so the keys must name no column."""
    return bindparam(prefix + column.name, type_=column.type)


def prefixed(prefix: str, values: dict) -> dict:
    """`values` (column name: value) keyed as `column_param` names them."""
    return {prefix + name: value for name, value in values.items()}
