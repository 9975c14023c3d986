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
import threading
import time
from collections.abc import Callable

import redis
from flask import Flask
from simple_websocket import ConnectionClosed

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


class Connection:
    """One websocket; sends from several threads go through one lock."""

    def __init__(self, ws, user_id: int, account_id: int) -> None:
        self.ws = ws
        self.user_id = user_id
        self.account_id = account_id
        self._send_lock = threading.Lock()
        # Set when the server ended the socket (suspension, sign-out): the
        # user is gone, so the close must not refresh their presence mark.
        self.closed_by_server = False

    def send(self, text: str) -> bool:
        """Send; False when the socket is gone."""
        with self._send_lock:
            try:
                self.ws.send(text)
            except (ConnectionClosed, OSError):
                return False
        return True

    def close(self) -> None:
        self.closed_by_server = True
        with self._send_lock, contextlib.suppress(ConnectionClosed, OSError):
            self.ws.close(reason=1008, message="signed out")


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
                conn.send(message["t"])

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
        from portal.realtime import presence

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
