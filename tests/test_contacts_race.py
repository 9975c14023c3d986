"""The claim race through HTTP: many agents take the same unassigned contact
at once against a real server; exactly one wins, the rest get 409 naming them.

Two shapes, each repeated over fresh contacts to catch flakiness: 20 threads
against the threaded development server (`flask run`), and 4 client
processes against gunicorn with 4 worker processes, so the claims meet in the
database from different server processes. Both run on the suite's database
(SQLite, or PostgreSQL from DATABASE_URL) and Redis.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignmentLog, Contact, HistoryEntry
from tests import factories
from tests.live_http import (
    HTTP_TIMEOUT,
    Agent,
    claim_together,
    sign_in_all,
    start_server,
)

ROUNDS = 20
THREADS = 20
PROCESSES = 4
AGENTS_PER_PROCESS = 5


@pytest.fixture(scope="module")
def threaded_server(app: Flask, database_url: str, redis_url: str, tmp_path_factory):
    # `app` is requested for its side effect: the schema is migrated.
    server = start_server(
        "flask", database_url, redis_url, tmp_path_factory.mktemp("race-flask")
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def process_server(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory
) -> Iterator:
    server = start_server(
        "gunicorn",
        database_url,
        redis_url,
        tmp_path_factory.mktemp("race-gunicorn"),
        workers=PROCESSES,
        threads=AGENTS_PER_PROCESS,
    )
    yield server
    server.stop()


def _signed_in(server, racers: dict) -> list:
    """Every racer signed in; a failure carries the server's log."""
    try:
        return sign_in_all(server.url, racers, factories.PASSWORD)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- web log\n{server.log_tail('web')}") from None


def seed_racers(app: Flask, count: int, rounds: int) -> tuple[dict, list[int]]:
    """`count` attendants ({email: name}) and `rounds` unassigned contacts,
    committed, with the test process's session released."""
    with app.test_request_context():
        racers = {}
        password_hash = None
        for n in range(count):
            # Argon2 is slow by design: hash once and share the hash.
            user = factories.make_user(
                "attendant",
                name=f"Racer {n:02d} Álvares",
                password=None if password_hash else factories.PASSWORD,
            )
            if password_hash:
                user.password_hash = password_hash
                user.activated_at = user.created_at
                db.session.commit()
            password_hash = user.password_hash
            racers[user.email] = user.name
        contact_ids = [
            factories.make_contact(unassigned=True, name=f"Prize {n}").id
            for n in range(rounds)
        ]
        db.session.remove()
    return racers, contact_ids


def assert_one_winner(
    app: Flask, contact_id: int, outcomes: list[tuple[str, int, str]]
) -> None:
    """outcomes: (agent name, status, body) of every claim of one contact."""
    statuses = Counter(status for _, status, _ in outcomes)
    assert statuses == {200: 1, 409: len(outcomes) - 1}, (contact_id, statuses)
    winner = next(name for name, status, _ in outcomes if status == 200)
    for name, status, body in outcomes:
        assert f'id="owner-{contact_id}"' in body and "<html" not in body
        if status == 409:
            assert f"Already taken by {winner}." in body, (name, body)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.owner is not None and contact.owner.name == winner
        assert contact.status == "assigned"
        logs = db.session.scalars(
            select(AssignmentLog).where(AssignmentLog.contact_id == contact_id)
        ).all()
        assert [(log.how, log.from_user_id, log.to_user_id) for log in logs] == [
            ("self", None, contact.owner_id)
        ]
        timeline_assignments = db.session.scalar(
            select(func.count())
            .select_from(HistoryEntry)
            .where(
                HistoryEntry.contact_id == contact_id,
                HistoryEntry.kind == "assignment",
            )
        )
        assert timeline_assignments == 1
        db.session.remove()


def test_twenty_threads_claim_the_same_contact_one_wins(app: Flask, threaded_server):
    racers, contact_ids = seed_racers(app, THREADS, ROUNDS)
    agents = _signed_in(threaded_server, racers)
    barrier = threading.Barrier(THREADS)

    def race(agent: Agent, contact_id: int) -> tuple[str, int, str]:
        barrier.wait(timeout=HTTP_TIMEOUT)
        status, body = agent.claim(contact_id)
        return agent.name, status, body

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for contact_id in contact_ids:
            outcomes = list(pool.map(race, agents, [contact_id] * THREADS))
            assert_one_winner(app, contact_id, outcomes)
    threaded_server.check_running()


def test_four_processes_claim_the_same_contact_one_wins(app: Flask, process_server):
    racers, contact_ids = seed_racers(app, PROCESSES * AGENTS_PER_PROCESS, ROUNDS)
    agents = _signed_in(process_server, racers)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(agents))
    results = spawn.Queue()
    children = [
        spawn.Process(
            target=claim_together,
            args=(
                agents[n * AGENTS_PER_PROCESS : (n + 1) * AGENTS_PER_PROCESS],
                contact_ids,
                barrier,
                results,
            ),
        )
        for n in range(PROCESSES)
    ]
    for child in children:
        child.start()
    try:
        found = [item for _ in children for item in results.get(timeout=120)]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
    assert [child.exitcode for child in children] == [0] * PROCESSES
    for contact_id in contact_ids:
        outcomes = [(n, s, b) for cid, n, s, b in found if cid == contact_id]
        assert len(outcomes) == len(agents)
        assert_one_winner(app, contact_id, outcomes)
    process_server.check_running()
