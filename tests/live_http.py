"""Talking HTTP to a real portal server from tests and benchmarks.

`Agent` is one signed-in browser's state (cookies, CSRF token) as plain data,
so it pickles into other processes; this module imports only the standard
library at the top, so a spawned child process that drives agents starts in
a fraction of a second. `start_server` runs the portal (`flask run` or
gunicorn) in a subprocess on a free port.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HTTP_TIMEOUT = 60
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Agent:
    """One browser's worth of state: cookies and the CSRF token.

    Each request opens its own connection, so threads never share one.
    """

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    csrf_token: str = ""
    name: str = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers
    ) -> tuple[int, str]:
        """(status, body); headers are given as X_CSRFToken="..." keywords."""
        parts = urllib.parse.urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=HTTP_TIMEOUT
        )
        body = urllib.parse.urlencode(form) if form is not None else None
        sent = {key.replace("_", "-"): value for key, value in headers.items()}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            for raw in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(raw).items():
                    self.cookies[name] = morsel.value
            return response.status, text
        finally:
            connection.close()

    def sign_in(self, email: str, password: str) -> Agent:
        """Through the real login form; fails unless it worked."""
        status, page = self.request("GET", "/login")
        assert status == 200, f"GET /login answered {status}"
        token = _CSRF_META.search(page).group(1)
        form = {"csrf_token": token, "email": email, "password": password}
        status, _ = self.request("POST", "/login", form)
        assert status == 303, f"sign-in of {email} answered {status}"
        # The session is new after sign-in, and so is its CSRF token.
        status, page = self.request("GET", "/")
        assert status == 200, f"GET / answered {status}"
        self.csrf_token = _CSRF_META.search(page).group(1)
        return self

    def claim(self, contact_id: int) -> tuple[int, str]:
        """POST /contacts/<id>/assign with an empty user_id, as htmx sends it."""
        return self.request(
            "POST",
            f"/contacts/{contact_id}/assign",
            {"user_id": ""},
            X_CSRFToken=self.csrf_token,
            HX_Request="true",
        )


def sign_in_all(
    base_url: str, people: dict[str, str], password: str, parallel: int = 8
) -> list[Agent]:
    """people: {email: name} -> signed-in agents, in the same order."""

    def sign_in(email: str) -> Agent:
        return Agent(base_url, name=people[email]).sign_in(email, password)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(sign_in, people))


def claim_together(agents: list[Agent], contact_ids: list[int], barrier, results):
    """Run in a child process: one thread per agent; before each claim every
    thread meets every other thread (of every process) at `barrier`. Puts
    [(contact_id, agent name, status, body), ...] on `results`."""

    def race(agent: Agent) -> list[tuple[int, str, int, str]]:
        outcomes = []
        for contact_id in contact_ids:
            barrier.wait(timeout=HTTP_TIMEOUT)
            status, body = agent.claim(contact_id)
            outcomes.append((contact_id, agent.name, status, body))
        return outcomes

    with ThreadPoolExecutor(max_workers=len(agents)) as pool:
        found = [item for items in pool.map(race, agents) for item in items]
    results.put(found)


# --- the server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(kind: str, port: int, workers: int, threads: int) -> list[str]:
    """`flask run` (the threaded development server `make run` uses) or
    gunicorn with threaded workers (production)."""
    if kind == "flask":
        return [
            str(VENV_BIN / "flask"),
            "--app",
            "app",
            "run",
            "--with-threads",
            "--no-reload",
            "--no-debugger",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    return [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        # Open websockets would hold a graceful stop for 30 s.
        "--graceful-timeout",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "app:app",
    ]


def start_server(
    kind: str,
    database_url: str,
    redis_url: str,
    instance: Path,
    workers: int = 4,
    threads: int = 8,
):
    """The portal in a subprocess on a free port, once /api/v1/health answers;
    returns the browser tests' LiveServer (stop(), log_tail(), check_running())."""
    from tests.browser.conftest import LiveServer

    port = free_port()
    server = LiveServer(url=f"http://127.0.0.1:{port}", instance=instance)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "WERKZEUG_"))
    }
    env.update(
        PORTAL_INSTANCE=str(instance),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_URL=server.url,
        SECRET_KEY="live-" + os.urandom(16).hex(),
        PYTHONUNBUFFERED="1",
    )
    server.start("web", server_command(kind, port, workers, threads), env)
    try:
        server.wait_healthy(timeout=60)
    except BaseException:
        server.stop()
        raise
    return server


# --- the JSON API ---------------------------------------------------------------


def api_request(
    base_url: str,
    method: str,
    path: str,
    key: str,
    body: object = None,
) -> tuple[int, dict]:
    """One JSON API call with a bearer key on its own connection:
    (status, decoded JSON answer)."""
    import json

    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=HTTP_TIMEOUT
    )
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def json_request(
    base_url: str,
    method: str,
    path: str,
    payload: object = None,
    bearer: str | None = None,
) -> tuple[int, object]:
    """A JSON API call: (status, parsed body, or the raw text when it is not
    JSON)."""
    import json

    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=HTTP_TIMEOUT
    )
    headers = {"Accept": "application/json"}
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text
