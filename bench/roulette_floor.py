"""The floor of bench/roulette.py: the same delivery with no portal behind it.

A bare Flask + flask-sock app on the bench's Redis, served the way the bench
serves the portal (gunicorn, gthread, the same workers and threads):

- `POST /api/v1/leads` takes the intake's JSON body, numbers the lead after
  its external_id, picks agent `number % agents`, publishes a fragment of
  about the offer pop-up's size on that agent's pub/sub channel and answers
  201 `{"id", "state"}`, as the portal's intake does;
- `GET /ws?agent=N` is agent N's socket: it subscribes to N's channel, says
  "subscribed" once Redis confirmed, and sends every message it hears;
- `GET /api/v1/health` answers 200.

No database, session, sign-in, template or router: what is left (Flask's
request handling, flask-sock, gunicorn's threads, one Redis publish and one
subscriber per socket) is the least a lead POST -> frame can cost on this
machine. `run_floor` posts to it with the portal bench's own paced intake
(same rate, duration and threads) while one selector thread holds the N
sockets, and returns the latencies and the server's CPU; `compare` sets the
portal's figures beside them against the issue's targets (p50 at most 3x,
p99 at most 5x the floor's).

Served as `gunicorn 'bench.roulette_floor:create_floor_app()'`; the app
reads FLOOR_REDIS_URL, FLOOR_AGENTS and FLOOR_CHANNEL from the environment.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import signal
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import redis
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from flask_sock import Sock
from wsproto.events import CloseConnection, Ping, TextMessage

from bench.common import pct
from bench.roulette_agents import Login, open_socket
from bench.roulette_cpu import CpuMeter, process_tree
from bench.roulette_load import StartLine, paced_intake
from tests.live_http import VENV_BIN, free_port, server_command

ROOT = Path(__file__).resolve().parents[1]
P50_RATIO_TARGET = 3.0
P99_RATIO_TARGET = 5.0
SUBSCRIBED = "subscribed"
_LEAD_ID = re.compile(r'data-lead-id="(\d+)"')
# About the size of the portal's offer pop-up, so both move as many bytes.
FRAGMENT = (
    '<div id="offer" class="offer-popup" data-lead-id="{lead}" data-state="pending" '
    'hx-swap-oob="true"><header><h2>New lead</h2><p dir="auto">{name}</p></header>'
    '<p class="message" dir="auto">{message}</p>'
    '<form method="post" action="/offers/{lead}/accept"><button>Accept</button>'
    '</form><form method="post" action="/offers/{lead}/decline"><button>Decline'
    "</button></form>" + "<!-- " + "x" * 800 + " --></div>"
)


# --- the bare app (what gunicorn serves) --------------------------------------------


def create_floor_app() -> Flask:
    """The floor's app, configured from the environment (see the docstring)."""
    app = Flask(__name__)
    sock = Sock(app)
    client = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
    agents = int(os.environ["FLOOR_AGENTS"])
    channel = os.environ["FLOOR_CHANNEL"]

    @app.get("/api/v1/health")
    def health() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    @app.post("/api/v1/leads")
    def create_lead() -> ResponseReturnValue:
        payload = request.get_json()
        lead_id = int(str(payload["external_id"]).rsplit("-", 1)[1]) + 1
        fragment = FRAGMENT.format(
            lead=lead_id,
            name=escape(str(payload.get("name", ""))),
            message=escape(str(payload.get("message", ""))),
        )
        client.publish(f"{channel}:{lead_id % agents}", fragment)
        return jsonify({"id": lead_id, "state": "offered"}), 201

    @sock.route("/ws")
    def agent_socket(ws) -> None:  # noqa: ANN001 (flask-sock's Server)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(f"{channel}:{request.args.get('agent', type=int)}")
            pubsub.get_message(timeout=5, ignore_subscribe_messages=False)
            ws.send(SUBSCRIBED)
            while ws.connected:
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    ws.send(message["data"].decode())
        finally:
            pubsub.close()

    return app


# --- the agents' side (a child process) ---------------------------------------------


def hold_sockets(
    base_url: str, agents: int, messages: object, stop: object, out_path: str
) -> None:
    """Child process entry: open agent 0..N-1's sockets, put ("ready",
    subscribed, errors) on `messages` once each says it is subscribed, stamp
    every frame until `stop` (an Event) is set; then write
    {"frames": [[lead_id, received], ...], "errors": [...]} to `out_path`."""
    parts = urllib.parse.urlsplit(base_url)
    selector = selectors.DefaultSelector()
    frames: list[tuple[int, float]] = []
    errors: list[str] = []
    subscribed = 0
    for agent in range(agents):
        try:
            conn, early = open_socket(
                parts.hostname,
                parts.port,
                Login(user_id=agent, cookies={}, csrf_token=""),
                target=f"/ws?agent={agent}",
            )
        except (OSError, ConnectionError) as exc:
            errors.append(f"socket of agent {agent}: {exc!r}")
            continue
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        subscribed += _read_events(conn, early, time.time(), frames)
    ready_sent = False
    deadline = time.monotonic() + 60
    while not stop.is_set():
        if not ready_sent and (
            subscribed >= agents - len(errors) or (time.monotonic() > deadline)
        ):
            messages.put(("ready", subscribed, errors[:5]))
            ready_sent = True
        for key, _mask in selector.select(0.05):
            conn = key.data
            try:
                data = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as exc:
                errors.append(f"socket of agent {conn.login.user_id}: {exc!r}")
                selector.unregister(conn.sock)
                continue
            conn.ws.receive_data(data or None)
            subscribed += _read_events(conn, conn.ws.events(), time.time(), frames)
            if not data:
                selector.unregister(conn.sock)
                conn.sock.close()
    for key in list(selector.get_map().values()):
        with contextlib.suppress(Exception):
            key.data.sock.setblocking(True)
            key.data.sock.sendall(key.data.ws.send(CloseConnection(code=1000)))
        key.data.sock.close()
    with open(out_path, "w") as fh:
        json.dump({"frames": frames, "errors": errors}, fh)


def _read_events(conn: object, events: object, at: float, frames: list) -> int:
    """Stamp the lead frames among `events`; returns how many "subscribed"."""
    subscribed = 0
    for event in events:
        if isinstance(event, TextMessage):
            conn.buffer.append(event.data)
            if not event.message_finished:
                continue
            text = "".join(conn.buffer)
            conn.buffer.clear()
            if text == SUBSCRIBED:
                subscribed += 1
                continue
            lead = _LEAD_ID.search(text)
            if lead:
                frames.append((int(lead.group(1)), at))
        elif isinstance(event, Ping):
            conn.sock.sendall(conn.ws.send(event.response()))
    return subscribed


# --- one run of the floor -----------------------------------------------------------


@dataclass
class Floor:
    """What the floor's run measured."""

    latencies: list[float] = field(default_factory=list)  # POST -> frame, s
    posted: int = 0
    created: int = 0
    connected: int = 0
    cpu_seconds: float = 0.0
    cpu_line: str = ""
    errors: list[str] = field(default_factory=list)


def _start_server(
    redis_url: str, agents: int, workers: int, threads: int, log_path: Path
) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the floor app, once it answers; (process, base URL)."""
    port = free_port()
    command = server_command("gunicorn", port, workers, threads)
    command[-1] = "bench.roulette_floor:create_floor_app()"
    env = dict(
        os.environ,
        FLOOR_REDIS_URL=redis_url,
        FLOOR_AGENTS=str(agents),
        FLOOR_CHANNEL=f"roleta:bench:floor:{os.urandom(4).hex()}",
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    )
    with log_path.open("wb") as log:
        # A session of its own, to be stopped as one group with its workers.
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the floor's gunicorn exited; see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            healthy = conn.getresponse().status == 200
            conn.close()
        except (http.client.HTTPException, OSError):
            healthy = False
        if healthy:
            return process, url
        if time.monotonic() > deadline:
            _stop_server(process)
            raise AssertionError(f"the floor never answered; see {log_path}")
        time.sleep(0.1)


def _stop_server(process: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def run_floor(
    spawn: object,
    redis_url: str,
    agents: int,
    rate: float,
    seconds: float,
    intake_threads: int,
    workers: int,
    threads: int,
    department: str,
) -> Floor:
    """Serve the floor, hold `agents` sockets, post `rate` leads a second
    for `seconds` as the portal's steady phase does; stop everything it
    started before returning. `spawn` is a multiprocessing context."""
    work = Path(tempfile.mkdtemp(prefix="roleta-floor-"))
    process, url = _start_server(redis_url, agents, workers, threads, work / "web.log")
    children = []
    floor = Floor()
    try:
        messages, stop = spawn.Queue(), spawn.Event()
        holder = spawn.Process(
            target=hold_sockets,
            args=(url, agents, messages, stop, str(work / "frames.json")),
            daemon=True,
        )
        holder.start()
        children.append(holder)
        _kind, floor.connected, floor.errors = messages.get(timeout=300)
        line = StartLine(spawn.Queue(), spawn.Event(), spawn.Value("d", 0.0))
        intake = spawn.Process(
            target=paced_intake,
            args=(
                "api",
                {"base_url": url, "api_key": "floor"},
                "s",
                rate,
                seconds,
                intake_threads,
                line,
                department,
                str(work / "posted.json"),
            ),
            daemon=True,
        )
        intake.start()
        children.append(intake)
        line.ready.get(timeout=300)
        meter = CpuMeter({"floor gunicorn": lambda: process_tree([process.pid])})
        line.at.value = time.time() + 0.5
        line.go.set()
        meter.start()
        intake.join(timeout=seconds + 300)
        time.sleep(1)  # the last frames
        floor.cpu_line = meter.stop()
        floor.cpu_seconds = meter.seconds["floor gunicorn"]
        stop.set()
        holder.join(timeout=60)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        _stop_server(process)
    posted = json.loads((work / "posted.json").read_text())
    held = json.loads((work / "frames.json").read_text())
    floor.errors += held["errors"]
    first: dict[int, float] = {}
    for lead_id, at in held["frames"]:
        first[lead_id] = min(at, first.get(lead_id, at))
    created = [p for p in posted if p["status"] == 201]
    floor.posted, floor.created = len(posted), len(created)
    floor.latencies = [
        first[p["lead_id"]] - p["sent"] for p in created if p["lead_id"] in first
    ]
    return floor


def compare(portal: list[float], floor: Floor) -> tuple[list[str], bool]:
    """The portal's lead POST -> offer frame beside the floor's: report lines,
    and whether p50 and p99 are within their ratios of the floor's."""
    if not floor.latencies or not portal:
        return ["  the floor: no latency to compare: FAIL"], False
    lines = [
        f"  the floor (bare Flask + flask-sock + Redis pub/sub, same gunicorn, "
        f"Redis, sockets and rate): lead POST -> frame p50 "
        f"{pct(floor.latencies, 50) * 1000:.1f} ms, p99 "
        f"{pct(floor.latencies, 99) * 1000:.1f} ms, max "
        f"{max(floor.latencies) * 1000:.1f} ms ({len(floor.latencies)} of "
        f"{floor.created} leads, {floor.connected} sockets"
        + (f", errors {floor.errors[:3]}" if floor.errors else "")
        + ")",
        f"    floor CPU per lead: gunicorn "
        f"{floor.cpu_seconds / max(1, floor.created) * 1000:.1f} ms; "
        f"{floor.cpu_line}",
    ]
    ok = True
    for p, target in ((50, P50_RATIO_TARGET), (99, P99_RATIO_TARGET)):
        ratio = pct(portal, p) / max(pct(floor.latencies, p), 1e-6)
        within = ratio <= target
        ok &= within
        lines.append(
            f"    portal p{p} {pct(portal, p) * 1000:.1f} ms = {ratio:.1f}x the "
            f"floor's {'PASS' if within else 'FAIL'} (target <= {target:g}x)"
        )
    return lines, ok
