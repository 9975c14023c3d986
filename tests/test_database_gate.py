"""The SQLite write gate (portal/database.py): writers queue on it instead
of sleeping in SQLite's busy handler, and every way a transaction ends lets
go of it. These run on a SQLite file of their own whatever the suite's
database is, since the gate exists only for SQLite."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from portal.database import GatedConnection, WriteGate, gate_for


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    yield engine
    engine.dispose()


def _gate(engine) -> WriteGate:
    return gate_for(str(engine.url.database))


def _free(gate: WriteGate) -> bool:
    """Whether another process could pass the gate now (a second gate on
    the same file has its own open file, as another process would)."""
    other = WriteGate(gate.lock_path.removesuffix("-writers"))
    if not other.acquire(timeout=0.05):
        return False
    other.release()
    return True


def test_a_file_database_gets_the_gated_connection(engine):
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert isinstance(dbapi, GatedConnection)
        assert dbapi.gate is _gate(engine)


def test_a_write_holds_the_gate_until_commit_and_reads_do_not_take_it(engine):
    gate = _gate(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t"))
        assert _free(gate)
        conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert not _free(gate)
        conn.commit()
        assert _free(gate)


@pytest.mark.parametrize("end", ["rollback", "close"])
def test_rollback_and_close_let_go_of_the_gate(engine, end):
    gate = _gate(engine)
    conn = engine.connect()
    conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    assert not _free(gate)
    getattr(conn, end)()
    assert _free(gate)
    conn.close()
    with engine.connect() as check:
        assert check.scalar(text("SELECT count(*) FROM t")) == 0


def test_a_failed_write_keeps_the_gate_until_its_transaction_ends(engine):
    gate = _gate(engine)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'a')"))
        with pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'b')"))
        # Still inside the transaction that wrote row 1.
        assert not _free(gate)
        conn.rollback()
        assert _free(gate)


def test_an_autocommit_write_lets_go_at_once(engine):
    gate = _gate(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert _free(gate)


def test_a_second_writer_waits_for_the_first_and_then_writes(engine):
    first = engine.connect()
    first.execute(text("INSERT INTO t (v) VALUES ('first')"))
    order: list[str] = []

    def second() -> None:
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES ('second')"))
            order.append("second wrote")
            conn.commit()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    # Queued at the gate, not failed and not through.
    assert thread.is_alive() and order == []
    order.append("first commits")
    first.commit()
    first.close()
    thread.join(timeout=5)
    assert order == ["first commits", "second wrote"]
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM t")) == 2


def test_many_writers_from_threads_all_land(engine):
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}-{i}"}
                    )
        except Exception as exc:  # a "database is locked" would land here
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM t")) == 160


def test_a_gate_held_too_long_elsewhere_is_passed_after_the_timeout(engine):
    gate = _gate(engine)
    other = WriteGate(gate.lock_path.removesuffix("-writers"))
    assert other.acquire()
    try:
        started = time.monotonic()
        assert gate.acquire(timeout=0.2) is False
        assert 0.2 <= time.monotonic() - started < 2
    finally:
        other.release()
    assert gate.acquire(timeout=0.2) is True
    gate.release()


def test_writers_checkpoint_the_wal_themselves_outside_the_gate(engine, tmp_path):
    from portal.database import CHECKPOINT_EVERY

    database = tmp_path / "gate.db"
    with engine.connect() as conn:
        # SQLite's own checkpoint would run inside a commit, in the gate.
        assert conn.scalar(text("PRAGMA wal_autocheckpoint")) == 0
    size_before = database.stat().st_size
    gate = _gate(engine)
    gate._commits = 0
    for n in range(CHECKPOINT_EVERY - 1):
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 2000 + str(n)}
            )
    # Everything so far sits in the WAL.
    assert database.stat().st_size == size_before
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('last')"))
    # The 200th commit copied it into the database file.
    assert database.stat().st_size > size_before + (CHECKPOINT_EVERY - 1) * 2000
