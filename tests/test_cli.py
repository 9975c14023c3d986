"""The Flask CLI (CONTRACT) and `python -m portal.launcher` (what `make run` runs)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis as redis_lib
from rq import Queue, Worker
from sqlalchemy import func, select

from portal.auth.service import issue_activation
from portal.cli import demo
from portal.cli.worker import run_worker
from portal.extensions import db
from portal.mail import outbox_messages
from portal.models import (
    Department,
    Team,
    TeamMember,
    Unit,
    UnitMember,
    User,
)
from portal.models.org import department_member
from portal.models.permissions import ROLE_PRESETS
from portal.queue import enqueue_in
from portal.settings.service import current_account, settings_dict
from tests import factories
from tests.roulette_helpers import offered, offers_of, overdue, two_agents

ROOT = Path(__file__).resolve().parent.parent
STRONG = "a long enough password"


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def row_counts(app) -> dict[str, int]:
    """How many rows each table this CLI writes to holds."""
    with app.app_context():
        tables = {
            "users": User.__table__,
            "teams": Team.__table__,
            "units": Unit.__table__,
            "departments": Department.__table__,
            "team members": TeamMember.__table__,
            "unit members": UnitMember.__table__,
            "department members": department_member,
        }
        counts = {
            name: db.session.scalar(select(func.count()).select_from(table))
            for name, table in tables.items()
        }
        db.session.remove()
        return counts


def get_user(app, email: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None, f"no user {email}"
        # Load what the tests read before the session goes.
        _ = (user.role.key, user.departments)
        _ = [(m.team.key, m.is_coordinator) for m in user.team_memberships]
        _ = [(m.unit.key, m.is_manager) for m in user.unit_memberships]
        db.session.expunge_all()
        return user


# --- create-user ------------------------------------------------------------


def test_create_user_with_password_can_sign_in(app, cli, auth):
    result = cli.invoke(
        args=[
            "create-user",
            "Ana.Souza@Example.com",
            "--role",
            "admin",
            "--name",
            "Ana Souza",
            "--password",
            STRONG,
        ]
    )

    assert result.exit_code == 0, result.output
    assert "ana.souza@example.com" in result.output
    user = get_user(app, "ana.souza@example.com")
    assert user.name == "Ana Souza"
    assert user.role.key == "admin"
    response = auth.login("ana.souza@example.com", STRONG)
    assert response.status_code == 303


def test_create_user_without_password_mails_an_activation_link(app, cli, run_jobs):
    result = cli.invoke(
        args=["create-user", "new@example.com", "--role", "seller", "--name", "New"]
    )

    assert result.exit_code == 0, result.output
    assert "activation" in result.output
    assert run_jobs() == 1
    with app.app_context():
        mails = outbox_messages(to="new@example.com")
    assert len(mails) == 1
    assert "/activate/" in mails[0].get_content()


def test_create_user_creates_teams_units_and_departments_by_key(app, cli):
    attendant = cli.invoke(
        args=[
            "create-user",
            "att@example.com",
            "--role",
            "attendant",
            "--name",
            "Att",
            "--password",
            STRONG,
            "--team",
            "north",
            "--department",
            "sales",
            "--department",
            "rentals",
        ]
    )
    manager = cli.invoke(
        args=[
            "create-user",
            "boss@example.com",
            "--role",
            "manager",
            "--name",
            "Boss",
            "--password",
            STRONG,
            "--unit",
            "downtown",
            "--department",
            "sales",
        ]
    )

    assert attendant.exit_code == 0, attendant.output
    assert manager.exit_code == 0, manager.output
    att = get_user(app, "att@example.com")
    assert [(m.team.key, m.is_coordinator) for m in att.team_memberships] == [
        ("north", False)
    ]
    assert sorted(d.key for d in att.departments) == ["rentals", "sales"]
    boss = get_user(app, "boss@example.com")
    assert [(m.unit.key, m.is_manager) for m in boss.unit_memberships] == [
        ("downtown", True)
    ]
    # "sales" was created once and reused by the second command.
    counts = row_counts(app)
    assert (counts["teams"], counts["units"], counts["departments"]) == (1, 1, 2)


BASE = ["--name", "Someone", "--password", STRONG]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["x@example.com", "--role", "wizard", *BASE], "--role"),
        (
            ["x@example.com", "--role", "admin", "--name", "X", "--password", "short"],
            "--password",
        ),
        (["TAKEN@Example.COM", "--role", "admin", *BASE], "EMAIL"),
        (["not-an-email", "--role", "admin", *BASE], "EMAIL"),
        (
            ["x@example.com", "--role", "admin", "--name", "  ", "--password", STRONG],
            "--name",
        ),
        (["x@example.com", "--role", "coordinator", *BASE, "--unit", "s1"], "--unit"),
        (["x@example.com", "--role", "reception", *BASE, "--team", "t1"], "--team"),
        (
            ["x@example.com", "--role", "attendant", *BASE, "--team", "Not A Key!"],
            "--team",
        ),
        (
            ["x@example.com", "--role", "attendant", *BASE, "--department", "a b"],
            "--department",
        ),
    ],
    ids=[
        "unknown-role",
        "weak-password",
        "duplicate-email-other-case",
        "invalid-email",
        "blank-name",
        "coordinator-in-unit",
        "reception-in-team",
        "bad-team-key",
        "bad-department-key",
    ],
)
def test_create_user_refuses_bad_input_and_writes_nothing(app, cli, args, named):
    with app.test_request_context():
        factories.make_user("admin", email="taken@example.com")
        db.session.remove()
    before = row_counts(app)

    result = cli.invoke(args=["create-user", *args])

    assert result.exit_code == 1
    assert f"Error: {named}:" in result.output
    assert row_counts(app) == before


# --- settings ---------------------------------------------------------------


def test_settings_show_prints_every_setting(app, cli):
    result = cli.invoke(args=["settings", "show"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        expected = settings_dict(current_account())
    lines = result.output.splitlines()
    assert len(lines) == len(expected)
    assert "roulette.enabled = false" in lines
    for key, value in expected.items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert f"{key} = {shown}" in lines


@pytest.mark.parametrize(
    ("key", "raw", "stored"),
    [
        ("process_mode", "3", 3),
        ("roulette.enabled", "true", True),
        ("roulette.offer_timeout", "90", 90),
        ("roulette.rounds", "4", 4),
        ("contacts.open_too_long_hours", "12", 12),
    ],
)
def test_settings_set_stores_the_value(app, cli, key, raw, stored):
    result = cli.invoke(args=["settings", "set", key, raw])

    assert result.exit_code == 0, result.output
    with app.app_context():
        assert settings_dict(current_account())[key] == stored
    shown = cli.invoke(args=["settings", "show"]).output.splitlines()
    assert f"{key} = {raw}" in shown


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("process_mode", "4"),
        ("roulette.enabled", "maybe"),
        ("roulette.offer_timeout", "soon"),
        ("roulette.rounds", "0"),
        ("contacts.open_too_long_hours", "-1"),
        ("roulette.speed", "1"),
    ],
)
def test_settings_set_refuses_bad_values(app, cli, key, raw):
    with app.app_context():
        before = settings_dict(current_account())

    result = cli.invoke(args=["settings", "set", key, raw])

    assert result.exit_code == 1
    assert f"Error: {key}:" in result.output
    with app.app_context():
        assert settings_dict(current_account()) == before


def test_settings_set_unknown_key_lists_the_known_ones(cli):
    result = cli.invoke(args=["settings", "set", "roulette.speed", "1"])

    assert result.exit_code == 1
    assert "roulette.offer_timeout" in result.output


# --- seed-demo --------------------------------------------------------------


def test_seed_demo_is_idempotent_and_covers_every_role(app, cli, auth):
    first = cli.invoke(args=["seed-demo"])
    counts = row_counts(app)
    second = cli.invoke(args=["seed-demo"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert row_counts(app) == counts
    assert second.output == first.output
    assert demo.DEMO_PASSWORD in first.output
    with app.app_context():
        roles = set(
            db.session.scalars(
                select(User.email).where(User.email.like(f"%@{demo.DEMO_EMAIL_DOMAIN}"))
            )
        )
        teams = set(db.session.scalars(select(Team.key)))
        units = {u.key: u.store_flow for u in db.session.scalars(select(Unit))}
        departments = set(db.session.scalars(select(Department.key)))
        db.session.remove()
    assert len(roles) == len(ROLE_PRESETS)
    for preset in ROLE_PRESETS:
        email = f"{preset.key}@{demo.DEMO_EMAIL_DOMAIN}"
        assert email in roles
        assert email in first.output
        assert get_user(app, email).role.key == preset.key
    assert len(teams) == 2
    assert sorted(units.values()) == [False, True]
    assert departments == {"sales", "rentals", "support"}
    coordinator = get_user(app, f"coordinator@{demo.DEMO_EMAIL_DOMAIN}")
    assert [m.is_coordinator for m in coordinator.team_memberships] == [True]
    manager = get_user(app, f"manager@{demo.DEMO_EMAIL_DOMAIN}")
    assert [m.is_manager for m in manager.unit_memberships] == [True]
    attendant = get_user(app, f"attendant@{demo.DEMO_EMAIL_DOMAIN}")
    assert attendant.team_memberships and attendant.departments
    seller = get_user(app, f"seller@{demo.DEMO_EMAIL_DOMAIN}")
    assert [m.is_manager for m in seller.unit_memberships] == [False]
    response = auth.login(f"attendant@{demo.DEMO_EMAIL_DOMAIN}", demo.DEMO_PASSWORD)
    assert response.status_code == 303


def test_seed_demo_keeps_an_admins_later_changes(app, cli):
    assert cli.invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        store = db.session.scalar(select(Unit).where(Unit.store_flow.is_(True)))
        store.store_flow = False
        db.session.commit()
        db.session.remove()

    assert cli.invoke(args=["seed-demo"]).exit_code == 0

    with app.app_context():
        assert not db.session.scalar(select(Unit).where(Unit.store_flow.is_(True)))


def test_seed_demo_turns_the_roulette_on_once(app, cli):
    from portal.settings.service import current_account

    assert cli.invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        account = current_account()
        assert account.roulette_enabled is True
        account.roulette_enabled = False  # the admin turns it off
        db.session.commit()
        db.session.remove()

    assert cli.invoke(args=["seed-demo"]).exit_code == 0

    with app.app_context():
        assert current_account().roulette_enabled is False
        db.session.remove()


# --- worker -----------------------------------------------------------------


@pytest.fixture
def restore_signals():
    """rq installs its own SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_worker_runs_scheduled_jobs_in_an_app_context(app, restore_signals):
    with app.test_request_context():
        user = factories.make_user("attendant", email="later@example.com")
        nonce = issue_activation(user)
        db.session.commit()
        enqueue_in(timedelta(0), "jobs.mail.send_activation", user.id, nonce)
        db.session.remove()

    # Burst mode: the scheduler moves due jobs onto the queue, then the
    # worker runs them and returns.
    assert run_worker(app, burst=True) is True

    with app.app_context():
        assert len(outbox_messages(to="later@example.com")) == 1


def test_a_burst_worker_expires_overdue_offers(app, restore_signals):
    # Offers have no expiry job: a burst (no sweeper) expires them first.
    with app.test_request_context():
        factories.enable_roulette()
        first, second = two_agents()
        lead = factories.make_lead(department="sales")
        offer = offered(lead)
        overdue(offer)
        db.session.remove()

    run_worker(app, burst=True)

    with app.app_context():
        assert offers_of(lead) == [(first.id, "expired"), (second.id, "pending")]


# --- the launcher (`make run`) ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Output:
    """Collects a process's output lines in a thread (so its pipe never fills)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,))
        self._thread.daemon = True
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def close(self, stream) -> None:
        self._thread.join(timeout=5)
        stream.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, process: subprocess.Popen, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text)
            if match:
                return match
            assert process.poll() is None, f"launcher exited:\n{self.text}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.text}")


def _wait_finished(jobs: list, timeout: float, output: Output) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [job.get_status(refresh=True) for job in jobs]
        if all(status == "finished" for status in statuses):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs not finished: {statuses}\n{output.text}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Launched:
    """A running `python -m portal.launcher` and what it started."""

    process: subprocess.Popen
    output: Output
    port: int
    queue: str
    redis_url: str = ""
    pids: list[int] = field(default_factory=list)
    children: list[psutil.Process] = field(default_factory=list)

    def start(self) -> None:
        """Wait for the banner; note the children and the Redis server."""
        banner = rf"Roleta is running at http://127\.0\.0\.1:{self.port}"
        self.output.wait_for(banner, self.process, 30)
        found = self.output.wait_for(
            r"Redis: (unix://\S+) \(embedded\)", self.process, 1
        )
        self.redis_url = found[1]
        self.note_processes()

    def note_processes(self) -> None:
        """Note every process the launcher started, and the Redis server."""
        launcher = psutil.Process(self.process.pid)
        self.children = launcher.children()
        self.pids = [child.pid for child in launcher.children(recursive=True)]
        with redis_lib.Redis.from_url(self.redis_url) as connection:
            self.pids.append(int(connection.info("server")["process_id"]))

    def child(self, word: str) -> psutil.Process:
        """The launcher's child whose command line has `word` (e.g. "worker")."""
        for child in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                if word in child.cmdline():
                    return child
        raise AssertionError(f"no {word} among {self.children}")

    def assert_all_gone(self, within: float = 5) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not all(map(_gone, self.pids)):
            time.sleep(0.1)
        left = [pid for pid in self.pids if not _gone(pid)]
        assert not left, f"still running: {left}\n{self.output.text}"


@pytest.fixture
def launched(tmp_path) -> Iterator[Launched]:
    """`make run`'s launcher on a free port, a temporary instance folder, no
    REDIS_URL (so it starts the embedded Redis) and SQLite."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "SECRET_KEY", "PUBLIC_URL"}
        and not key.startswith(("FLASK_", "WERKZEUG_"))
    }
    port = _free_port()
    queue = "roleta-launcher-test"
    env.update(
        PORTAL_INSTANCE=str(tmp_path / "instance"),
        PORTAL_PORT=str(port),
        RQ_QUEUE=queue,
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.launcher"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = Launched(process, Output(process.stdout), port, queue)
    try:
        yield run
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in run.pids:  # only what this launcher started
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        run.output.close(process.stdout)


def test_launcher_runs_web_worker_and_one_redis_and_stops_them_all(launched):
    launched.start()
    assert f"admin@{demo.DEMO_EMAIL_DOMAIN}" in launched.output.text
    assert demo.DEMO_PASSWORD in launched.output.text
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://127.0.0.1:{launched.port}/api/v1/health"
    with opener.open(url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"db": "ok", "redis": "ok"}
    # A job by dotted path, now and through the scheduler, on the same
    # embedded Redis the web server reports healthy.
    with redis_lib.Redis.from_url(launched.redis_url) as connection:
        queue = Queue(launched.queue, connection=connection)
        now = queue.enqueue("jobs.mail.send_activation", 0, "no-such-link")
        later = queue.enqueue_in(
            timedelta(seconds=1), "jobs.mail.send_activation", 0, "no-such-link"
        )
        _wait_finished([now, later], 15, launched.output)
        worker_pids = {worker.pid for worker in Worker.all(connection=connection)}
    # Now the worker has surely forked its scheduler too.
    launched.note_processes()
    assert worker_pids == {launched.child("worker").pid}
    launched.child("run")  # the web server
    assert len(launched.pids) >= 4  # web, worker, its scheduler, redis-server

    launched.process.send_signal(signal.SIGINT)

    assert launched.process.wait(timeout=15) == 0, launched.output.text
    launched.assert_all_gone()


def test_launcher_stops_everything_when_a_child_dies(launched):
    launched.start()

    launched.child("worker").kill()

    assert launched.process.wait(timeout=15) == 1, launched.output.text
    assert "the worker exited unexpectedly" in launched.output.text
    launched.assert_all_gone()
