"""Browser tests: headless Chromium against the real web server and worker.

The package starts the portal's web server and RQ worker as subprocesses on a
free port. They share the suite's database and Redis (the `database_url` and
`redis_url` fixtures), so the root conftest's per-test wipe applies to them as
well; the `app` fixture has already migrated the schema. Playwright's sync API
drives Debian's Chromium (Playwright's own browser download is not used).

Screenshots go to test-artifacts/: `<test>-<step>.png` at the steps a test
names, and `<test>.png` for every open page when a test fails. The server and
worker logs are attached to the report of a failed test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from portal.extensions import db
from tests import factories

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VENV_BIN = Path(sys.executable).parent
# Its own queue: the suite's other tests enqueue on the default one and run
# those jobs themselves; this package's worker must not take them.
LIVE_QUEUE = "roleta-browser"
SECRET_KEY = "browser-tests-" + os.urandom(16).hex()
STARTUP_TIMEOUT = 30.0
MAIL_TIMEOUT = 20.0
# Generous for a loaded CI machine; a passing step never waits this long.
TIMEOUT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


expect.set_options(timeout=TIMEOUT_MS)


def chromium_skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they must run.

    As root, `make test` installs Chromium, so a missing binary is a failure,
    not a skip.
    """
    if CHROMIUM.exists() or os.geteuid() == 0:
        return None
    return (
        f"{CHROMIUM} is missing and we are not root to install it "
        "(apt-get install chromium; `make test` does this as root)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    reason = chromium_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Keep each phase's report on the item (the page fixture screenshots
    failures) and attach the live processes' logs to a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    server = getattr(item, "funcargs", {}).get("live_server")
    if report.failed and isinstance(server, LiveServer):
        for name in server.processes:
            report.sections.append((f"{name} log (tail)", server.log_tail(name)))
    return report


# --- the live server ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Never through a proxy from the environment: the server is on loopback.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class LiveServer:
    """The web server and worker subprocesses, and where they write."""

    url: str
    instance: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        return self.instance / "outbox"

    def log_path(self, name: str) -> Path:
        return self.instance / f"{name}.log"

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with self.log_path(name).open("wb") as log:
            # A session of its own: stopping it reaches the worker's forked
            # scheduler too.
            self.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_running(self) -> None:
        """Fail with the log of any process that has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"the {name} process exited with {process.returncode}:\n"
                    + self.log_tail(name)
                )

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error: object = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                with _direct.open(f"{self.url}/api/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise AssertionError(
            f"{self.url}/api/v1/health did not answer 200 within {timeout}s "
            f"({last_error}):\n" + self.log_tail("web")
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        """Mails the worker delivered to the outbox, oldest first."""
        if not self.outbox.exists():
            return []
        found = []
        for path in sorted(self.outbox.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if to is None or message["To"] == to:
                found.append(message)
        return found

    def wait_for_mail(self, to: str, timeout: float = MAIL_TIMEOUT) -> EmailMessage:
        """The newest mail to `to`, waiting for the worker to deliver it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.mails(to)
            if found:
                return found[-1]
            self.check_running()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no mail to {to} in {self.outbox} after {timeout}s; worker log:\n"
                    + self.log_tail("worker")
                )
            time.sleep(0.1)

    def clear_outbox(self) -> None:
        if self.outbox.exists():
            for path in self.outbox.iterdir():
                path.unlink()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


@pytest.fixture(scope="package")
def live_server(
    app: Flask, database_url: str, redis_url: str, tmp_path_factory
) -> Iterator[LiveServer]:
    """The real web server and worker on a free port, for this package."""
    # `app` is requested for its side effect: the schema is migrated.
    port = _free_port()
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        instance=tmp_path_factory.mktemp("live-instance"),
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "WERKZEUG_"))
    }
    env.update(
        PORTAL_INSTANCE=str(server.instance),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_URL=server.url,
        SECRET_KEY=SECRET_KEY,
        RQ_QUEUE=LIVE_QUEUE,
        PYTHONUNBUFFERED="1",
    )
    flask = str(VENV_BIN / "flask")
    try:
        server.start(
            "web",
            [flask, "--app", "app", "run", "--host", "127.0.0.1"]
            + ["--port", str(port), "--no-reload", "--no-debugger"],
            env,
        )
        server.start("worker", [flask, "--app", "app", "worker"], env)
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _empty_live_outbox(live_server: LiveServer, clean_state) -> None:
    """The root conftest empties the test app's outbox; this one empties the
    live server's."""
    live_server.clear_outbox()


# --- the browser ----------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the package (launch() gives it a fresh temporary
    profile); each test gets its own contexts."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    ARTIFACTS.mkdir(exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):
        stale.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class BrowserLog:
    """What the pages of one test reported: console errors and uncaught
    exceptions."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]

    def watch(self, context: BrowserContext) -> None:
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.page_errors.append(str(error.error)))

    def _on_console(self, message) -> None:
        url = message.location.get("url", "")
        # The browser asks for /favicon.ico on its own; no page refers to it.
        if message.type == "error" and not url.endswith("/favicon.ico"):
            self.console_errors.append(f"{message.text} ({url})")


def artifact_name(node: pytest.Item) -> str:
    return re.sub(r"[^\w.-]+", "_", node.name).strip("_")


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def new_page(
    browser: Browser, live_server: LiveServer, browser_log: BrowserLog, request
) -> Iterator[Callable[..., Page]]:
    """new_page(**context_options): a page in a fresh browser context (no
    cookies), on the live server, 1280x800 and English unless told otherwise.

    On teardown: a failed test screenshots every page; any test fails when a
    page broke the CSP or threw an uncaught exception.
    """
    contexts: list[BrowserContext] = []

    def open_page(**options) -> Page:
        options = {
            "base_url": live_server.url,
            "viewport": DESKTOP,
            "locale": "en-US",
            **options,
        }
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        browser_log.watch(context)
        contexts.append(context)
        return context.new_page()

    yield open_page

    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    try:
        if failed:
            ARTIFACTS.mkdir(exist_ok=True)
            pages = [page for context in contexts for page in context.pages]
            for n, page in enumerate(pages, start=1):
                suffix = "" if n == 1 else f"-{n}"
                page.screenshot(
                    path=ARTIFACTS / f"{artifact_name(request.node)}{suffix}.png",
                    full_page=True,
                )
    finally:
        for context in contexts:
            context.close()
    if not failed:
        blocked, thrown = browser_log.csp_violations, browser_log.page_errors
        assert not blocked, "the CSP blocked:\n" + "\n".join(blocked)
        assert not thrown, "a page threw:\n" + "\n".join(thrown)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def screenshot(request) -> Callable[[Page, str], Path]:
    """screenshot(page, step): save test-artifacts/<test>-<step>.png."""

    def take(page: Page, step: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{artifact_name(request.node)}-{step}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


# --- people and signing in ------------------------------------------------


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    password: str


@pytest.fixture
def seed_user(app: Flask) -> Callable[..., Person]:
    """seed_user(role="admin", **make_user options) -> Person, committed.

    The session is released at once so that no transaction of the test
    process stands in the live server's way.
    """

    def seed(role: str = "admin", **options) -> Person:
        password = options.setdefault("password", factories.PASSWORD)
        with app.test_request_context():
            user = factories.make_user(role, **options)
            person = Person(email=user.email, name=user.name, password=password)
            db.session.remove()
        return person

    return seed


def submit_login(page: Page, email: str, password: str) -> None:
    """Fill and send the real login form (English labels)."""
    if not page.url.endswith("/login"):
        page.goto("/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


@pytest.fixture
def sign_in() -> Callable[[Page, Person], None]:
    """sign_in(page, person): through the login form; fails unless it worked."""

    def sign_in(page: Page, person: Person, password: str | None = None) -> None:
        submit_login(page, person.email, password or person.password)
        expect(page).not_to_have_url(re.compile(r"/login(\?|$)"))

    return sign_in


def has_horizontal_scroll(page: Page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") > width
