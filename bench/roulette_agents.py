"""The agents' side of bench/roulette.py, run in a child process of its own.

Every agent holds one websocket to `GET /ws`. All sockets are served by ONE
thread with a selector (wsproto does the framing), so 200 agents cost the
2-core machine almost nothing and each frame is stamped the moment its bytes
are read. An offer frame is answered after a random "think time": accepted
or declined (a share of each), over HTTP from a small thread pool, as htmx
would post it. Offers whose id is a multiple of `ignore_every` are left to
run out, to measure expiry lateness; an agent never lets three in a row run
out, or the roulette would switch it off (`AUTO_PAUSE_AFTER`).

Only the standard library and wsproto are imported: the process starts fast.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import json
import random
import re
import selectors
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

_OFFER_ID = re.compile(r'data-offer-id="(\d+)"')
_LEAD_ID = re.compile(r'data-lead-id="(\d+)"')
_STATE = re.compile(r'data-state="(\w+)"')
# Never let this many offers in a row run out (the roulette pauses at 3).
MAX_IGNORED_IN_A_ROW = 2
# gunicorn closes idle keep-alive connections after 2 s; reconnect before.
IDLE_RECONNECT_S = 1.0


@dataclass
class Login:
    """A signed-in agent, as plain picklable data."""

    user_id: int
    cookies: dict[str, str]
    csrf_token: str


@dataclass
class Policy:
    accept_share: float = 0.7
    think_min_s: float = 0.2
    think_max_s: float = 1.5
    # While the `human_pace` event is set (the flood), think this long: a
    # person reading the pop-up, not the steady phase's stress pace.
    flood_think_min_s: float = 4.0
    flood_think_max_s: float = 9.0
    # Offers with id % ignore_every == 0 are left unanswered (0: none).
    ignore_every: int = 20
    seed: int = 1


@dataclass
class Frame:
    """One offer-related frame as it arrived on an agent's socket."""

    at: float
    agent_id: int
    offer_id: int
    lead_id: int
    state: str


@dataclass
class Answer:
    offer_id: int
    agent_id: int
    decision: str  # accept | decline
    due: float
    sent: float = 0.0
    done: float = 0.0
    status: int = 0


@dataclass
class Outcome:
    connected: int = 0
    switched_on: int = 0
    errors: list[str] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    closed_by_server: int = 0
    other_frames: int = 0


class _Socket:
    """One agent's websocket: a wsproto state machine over a plain socket."""

    def __init__(self, login: Login, sock: socket.socket, ws: WSConnection) -> None:
        self.login = login
        self.sock = sock
        self.ws = ws
        self.buffer: list[str] = []
        self.ignored_in_a_row = 0
        self.open = True


def open_socket(
    host: str, port: int, login: Login, target: str = "/ws"
) -> tuple[_Socket, list]:
    """Open the socket and do the handshake; returns the socket and any events
    that arrived with the handshake's answer (the server speaks at once)."""
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws = WSConnection(ConnectionType.CLIENT)
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    headers = [(b"Cookie", cookie.encode())] if cookie else []
    sock.sendall(
        ws.send(Request(host=f"{host}:{port}", target=target, extra_headers=headers))
    )
    pending: list = []
    accepted = False
    while not accepted:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                accepted = True
            elif isinstance(event, RejectConnection | RejectData):
                raise ConnectionError(f"handshake refused: {event}")
            elif accepted:
                pending.append(event)
    sock.setblocking(False)
    return _Socket(login, sock, ws), pending


class _Http:
    """Keep-alive HTTP per pool thread, reopened before the server drops it."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.local = threading.local()

    def post(self, login: Login, path: str, form: dict[str, str]) -> int:
        conn = getattr(self.local, "conn", None)
        last = getattr(self.local, "last", 0.0)
        if conn is None or time.monotonic() - last > IDLE_RECONNECT_S:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.conn = conn
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in login.cookies.items()),
            "X-CSRFToken": login.csrf_token,
            "HX-Request": "true",
        }
        try:
            conn.request("POST", path, urllib.parse.urlencode(form), headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        finally:
            self.local.last = time.monotonic()


def run_agents(
    base_url: str,
    logins: list[Login],
    policy: Policy,
    messages,
    stop,
    out_path: str,
    human_pace=None,
) -> None:
    """Child process entry: connect, switch on, answer offers until `stop`
    (a multiprocessing Event) is set; then write the Outcome as JSON to
    `out_path`. While `human_pace` (an Event) is set, offers are answered
    after the policy's flood think time. Puts ("ready", connected,
    switched_on, errors) on `messages` once every agent is connected and
    available."""
    outcome = Outcome()
    parts = urllib.parse.urlsplit(base_url)
    selector = selectors.DefaultSelector()
    sockets: list[_Socket] = []
    rng = random.Random(policy.seed)
    due: list[tuple[float, int, int, str]] = []
    lock = threading.Lock()
    http_client = _Http(base_url)
    by_user = {login.user_id: login for login in logins}

    def handle(conn: _Socket, events: list, at: float) -> None:
        for event in events:
            if isinstance(event, TextMessage):
                conn.buffer.append(event.data)
                if event.message_finished:
                    text = "".join(conn.buffer)
                    conn.buffer.clear()
                    on_message(conn, text, at)
            elif isinstance(event, Ping):
                conn.sock.sendall(conn.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                outcome.closed_by_server += 1
                with contextlib.suppress(Exception):
                    conn.sock.sendall(conn.ws.send(event.response()))
                close(conn)

    def on_message(conn: _Socket, text: str, at: float) -> None:
        offer = _OFFER_ID.search(text)
        if offer is None:
            outcome.other_frames += 1  # the presence switch, notifications
            return
        lead = _LEAD_ID.search(text)
        state = _STATE.search(text)
        offer_id = int(offer.group(1))
        frame = Frame(
            at=at,
            agent_id=conn.login.user_id,
            offer_id=offer_id,
            lead_id=int(lead.group(1)) if lead else 0,
            state=state.group(1) if state else "",
        )
        outcome.frames.append(frame)
        if frame.state != "pending":
            return
        if (
            policy.ignore_every
            and offer_id % policy.ignore_every == 0
            and conn.ignored_in_a_row < MAX_IGNORED_IN_A_ROW
        ):
            conn.ignored_in_a_row += 1
            outcome.ignored.append(offer_id)
            return
        conn.ignored_in_a_row = 0
        if human_pace is not None and human_pace.is_set():
            think = rng.uniform(policy.flood_think_min_s, policy.flood_think_max_s)
        else:
            think = rng.uniform(policy.think_min_s, policy.think_max_s)
        decision = "accept" if rng.random() < policy.accept_share else "decline"
        heapq.heappush(due, (at + think, offer_id, conn.login.user_id, decision))

    def close(conn: _Socket) -> None:
        if conn.open:
            conn.open = False
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn.sock)
            conn.sock.close()

    def answer(item: Answer) -> None:
        item.sent = time.time()
        try:
            item.status = http_client.post(
                by_user[item.agent_id], f"/offers/{item.offer_id}/{item.decision}", {}
            )
        except (OSError, http.client.HTTPException) as exc:
            item.status = -1
            with lock:
                outcome.errors.append(f"answer {item.offer_id}: {exc!r}")
        item.done = time.time()

    def switch_on(login: Login) -> None:
        try:
            status = http_client.post(login, "/presence", {"available": "1"})
        except (OSError, http.client.HTTPException) as exc:
            status = -1
            with lock:
                outcome.errors.append(f"presence of {login.user_id}: {exc!r}")
        if status == 200:
            with lock:
                outcome.switched_on += 1
        else:
            with lock:
                outcome.errors.append(f"presence of {login.user_id}: {status}")

    # As many as agents: each agent answers on its own, as its browser would;
    # a smaller pool would queue answers behind slow ones and make them late.
    pool = ThreadPoolExecutor(max_workers=len(logins), thread_name_prefix="answer")
    early: list[tuple[_Socket, list]] = []
    for login in logins:
        try:
            conn, events = open_socket(parts.hostname, parts.port, login)
        except (OSError, ConnectionError) as exc:
            outcome.errors.append(f"socket of {login.user_id}: {exc!r}")
            continue
        sockets.append(conn)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        early.append((conn, events))
    outcome.connected = len(sockets)
    for conn, events in early:
        handle(conn, events, time.time())
    # Switch everyone on while already listening: offers may come at once.
    switching = [pool.submit(switch_on, login) for login in logins]
    ready_sent = False

    while not stop.is_set():
        if not ready_sent and all(f.done() for f in switching):
            messages.put(
                ("ready", outcome.connected, outcome.switched_on, outcome.errors[:5])
            )
            ready_sent = True
        now = time.time()
        while due and due[0][0] <= now:
            at, offer_id, agent_id, decision = heapq.heappop(due)
            item = Answer(offer_id, agent_id, decision, due=at)
            outcome.answers.append(item)
            pool.submit(answer, item)
        timeout = 0.05 if not due else max(0.0, min(0.05, due[0][0] - now))
        for key, _mask in selector.select(timeout):
            conn = key.data
            try:
                data = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as exc:
                outcome.errors.append(f"socket of {conn.login.user_id}: {exc!r}")
                close(conn)
                continue
            at = time.time()
            if not data:
                conn.ws.receive_data(None)
                handle(conn, list(conn.ws.events()), at)
                close(conn)
                continue
            conn.ws.receive_data(data)
            handle(conn, list(conn.ws.events()), at)

    pool.shutdown(wait=True)
    for conn in sockets:
        if conn.open:
            with contextlib.suppress(Exception):
                conn.sock.setblocking(True)
                conn.sock.sendall(conn.ws.send(CloseConnection(code=1000)))
            close(conn)
    with open(out_path, "w") as fh:
        json.dump(asdict(outcome), fh)
