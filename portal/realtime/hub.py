"""Cross-process fan-out of websocket pushes through Redis pub/sub.

Any process (a web request, an RQ job) calls `publish(user_id, html)` after its
transaction committed. Every web process runs one subscriber thread that hands
each message to the sockets *it* holds for that user. The channel is named
after the Redis database: pub/sub channels are shared by every database of a
server. When Redis goes away the subscriber reconnects with backoff, marks
its sockets' users present again (a restarted Redis may have lost the marks)
and re-sends every local agent's pending offer, since pushes published
meanwhile were lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import redis
from flask import Flask
from simple_websocket import ConnectionClosed, Server

from portal.realtime import presence
from portal.redis_conn import get_redis

CHANNEL = "roleta:push"
log = logging.getLogger(__name__)


def channel_of(client: redis.Redis) -> str:
    """The push channel of the deployment using `client`'s database.

    Pub/sub ignores the database number: every client of a Redis server
    hears every channel. Deployments that share a server by database number
    (staging beside production, test runs side by side) would otherwise
    receive each other's pushes, user ids being small integers in each.
    """
    db_number = client.connection_pool.connection_kwargs.get("db") or 0
    return f"{CHANNEL}:{db_number}"


def publish(user_id: int, html: str) -> None:
    """Deliver an HTML fragment to every socket of the user, in any process."""
    client = get_redis()
    client.publish(channel_of(client), json.dumps({"u": user_id, "t": html}))


def publish_close(user_id: int) -> None:
    """Close every socket of the user (suspension), in any process."""
    client = get_redis()
    client.publish(channel_of(client), json.dumps({"u": user_id, "close": True}))


# Pushes waiting for one socket beyond which its client is taken to have
# stopped reading (a phone whose network vanished without closing): the
# socket is dropped, and the browser's reconnect gets its state re-sent.
MAX_BACKLOG = 64
_CLOSE = object()  # in an outbox: close the socket after what came before


class Connection:
    """One websocket, written by a thread of its own.

    Every process has one subscriber thread feeding all its sockets, and a
    send blocks while the client is not reading. So `push` only queues, and
    the connection's writer thread sends, in order; a client that stops
    reading holds up nobody else, and is dropped once MAX_BACKLOG pushes
    wait for it.
    """

    def __init__(self, ws: Server, user_id: int, account_id: int) -> None:
        self.ws = ws
        self.user_id = user_id
        self.account_id = account_id
        # Set when the server ended the socket (suspension, sign-out): the
        # user is gone, so the close must not refresh their presence mark.
        self.closed_by_server = False
        self._outbox: deque = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._writer = threading.Thread(
            target=self._write, name=f"roleta-ws-{user_id}", daemon=True
        )
        self._writer.start()

    def push(self, text: str) -> None:
        """Queue a message for the socket; never blocks."""
        self._queue(text)

    def close(self) -> None:
        """Close the socket (with 1008) once what was queued before is sent."""
        self.closed_by_server = True
        self._queue(_CLOSE)

    def stop(self) -> None:
        """The socket ended: drop what waits and let the writer thread go."""
        with self._changed:
            self._stopped = True
            self._outbox.clear()
            self._changed.notify()

    def _queue(self, item: str | object) -> None:
        with self._changed:
            if self._stopped:
                return
            if len(self._outbox) >= MAX_BACKLOG:
                self._drop()
                return
            self._outbox.append(item)
            self._changed.notify()

    def _drop(self) -> None:
        """(Holding `_changed`.) Shut the socket down: that fails the send
        the writer is blocked in, and ends the handler's receive."""
        log.warning(
            "dropping the socket of user %s: %d pushes wait for it",
            self.user_id,
            len(self._outbox),
        )
        self.stop()  # the condition's lock is reentrant
        with contextlib.suppress(OSError):
            self.ws.sock.shutdown(socket.SHUT_RDWR)

    def _write(self) -> None:
        while True:
            with self._changed:
                while not self._outbox and not self._stopped:
                    self._changed.wait()
                if self._stopped:
                    return
                item = self._outbox.popleft()
            try:
                if item is _CLOSE:
                    self.ws.close(reason=1008, message="signed out")
                    self.stop()
                    return
                self.ws.send(item)
            except Exception as exc:  # the thread must end, whatever broke
                if not isinstance(exc, (ConnectionClosed, OSError)):
                    # Such as wsproto refusing a send on a socket that began
                    # closing meanwhile.
                    log.warning(
                        "writing to user %s's socket failed: %r", self.user_id, exc
                    )
                self.stop()
                return


class Hub:
    """The sockets this process holds, and the thread that feeds them."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[Connection]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        # Called with (app, user_id) after a reconnect to Redis.
        self.resync: Callable[[Flask, int], None] | None = None

    def register(self, app: Flask, conn: Connection) -> None:
        with self._lock:
            self._by_user.setdefault(conn.user_id, set()).add(conn)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, args=(app,), name="roleta-hub", daemon=True
                )
                self._thread.start()
        # A push published before we listen would be lost: wait (briefly)
        # until the subscription stands. The caller re-sends pending state
        # after registering, so nothing falls between the two.
        self._subscribed.wait(timeout=2)

    def unregister(self, conn: Connection) -> int:
        """Forget the socket; returns how many the user still has here."""
        with self._lock:
            conns = self._by_user.get(conn.user_id)
            if not conns:
                return 0
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]
                return 0
            return len(conns)

    def connections(self, user_id: int) -> list[Connection]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def local_user_ids(self) -> list[int]:
        with self._lock:
            return list(self._by_user)

    def deliver(self, message: dict) -> None:
        user_id = message.get("u")
        for conn in self.connections(user_id):
            if message.get("close"):
                conn.close()
            elif "t" in message:
                conn.push(message["t"])

    def _run(self, app: Flask) -> None:
        backoff = 0.1
        lost = False
        while True:
            pubsub = None
            try:
                client = get_redis(app)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel_of(client))
                # The subscribe reply proves the subscription is in place.
                pubsub.get_message(timeout=5, ignore_subscribe_messages=False)
                self._subscribed.set()
                backoff = 0.1
                if lost:
                    lost = False
                    self._resync_all(app)
                while True:
                    message = pubsub.get_message(timeout=30)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        self.deliver(json.loads(message["data"]))
                    except (ValueError, TypeError):
                        log.warning("ignored a malformed push")
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._subscribed.clear()
                lost = True
                log.warning("push subscriber lost Redis (%s); retrying", exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # never let the thread die: sockets depend on it
                self._subscribed.clear()
                lost = True  # pushes published meanwhile are lost too
                log.exception("push subscriber failed; restarting")
                time.sleep(1)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # already broken
                        pubsub.close()

    def _resync_all(self, app: Flask) -> None:
        """After Redis came back: its keys may be gone (a restart without
        persistence), so mark every local socket's user present at once
        rather than at their next heartbeat, then re-send pending state."""
        with self._lock:
            present = {
                (c.account_id, c.user_id) for cs in self._by_user.values() for c in cs
            }
        try:
            with app.app_context():
                for account_id, user_id in present:
                    presence.touch(account_id, user_id)
        except redis.RedisError:
            log.warning("could not restore presence marks; heartbeats will")
        if self.resync is None:
            return
        for user_id in self.local_user_ids():
            try:
                self.resync(app, user_id)
            except Exception:
                log.exception("re-sending pending state to user %s failed", user_id)


hub = Hub()
