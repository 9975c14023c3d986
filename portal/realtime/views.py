"""`GET /ws`: an agent's live connection (CONTRACT: Websocket).

The handshake is checked before the upgrade (a plain 403/401 answer): the
session cookie must name a signed-in user and a browser's Origin must be this
site. Then the socket registers with the process's hub, gets the agent's
pending offer and switch, and blocks on receive with the database session
released; every HEARTBEAT_SECONDS it refreshes the agent's presence mark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Flask, abort, current_app, request
from flask_login import current_user
from simple_websocket import Server
from sqlalchemy import update

from portal.extensions import db, sock
from portal.ids import parse_id
from portal.models import Offer, User
from portal.models.base import utcnow
from portal.realtime import presence
from portal.realtime.hub import Connection, hub
from portal.roulette import push
from portal.roulette.pool import RECEIVE, pending_offer
from portal.roulette.routing import route_soon
from portal.roulette.switch import switch_context

bp = Blueprint("realtime", __name__)
log = logging.getLogger(__name__)


def _origin_allowed(origin: str | None) -> bool:
    """Same site as this request, or as PUBLIC_URL behind a proxy. Clients
    that send no Origin are not browsers: they cannot ride a victim's cookie."""
    if not origin:
        return True
    parts = urlsplit(origin)
    allowed = {request.host_url.rstrip("/")}
    public = current_app.config.get("PUBLIC_URL")
    if public:
        allowed.add(public.rstrip("/"))
    allowed_hosts = {urlsplit(url).netloc for url in allowed}
    if parts.scheme not in ("http", "https"):
        return False
    return f"{parts.scheme}://{parts.netloc}" in allowed or (
        # The scheme may differ behind a TLS-terminating proxy; the host may not.
        parts.netloc in allowed_hosts and public is None
    )


@bp.before_request
def check_handshake() -> None:
    if not _origin_allowed(request.headers.get("Origin")):
        abort(403)
    if not current_user.is_authenticated:
        abort(401)


def send_state(app: Flask, user_id: int, only: Connection | None = None) -> None:
    """(Re)send the agent's switch and pending offer to their sockets here.

    Runs in an app context, and so a database session, of its own: the
    caller must not hold a transaction open meanwhile.
    """
    with app.app_context():
        user = db.session.get(User, user_id)
        if user is None or not user.is_active:
            return
        fragments = []
        if user.can(RECEIVE):
            fragments.append(push.render_for(user, "presence", **switch_context(user)))
        offer = pending_offer(user_id)
        if offer is not None:
            fragments.append(push.render_offer(push.card_of(offer.id)))
        targets = [only] if only else hub.connections(user_id)
        for conn in targets:
            for fragment in fragments:
                conn.push(fragment)
        db.session.remove()


hub.resync = send_state


def _mark_seen(user_id: int, raw: str) -> None:
    try:
        offer_id = parse_id(json.loads(raw).get("seen"))
    except (ValueError, AttributeError):
        return
    if offer_id is None:
        return
    db.session.execute(
        update(Offer)
        .where(Offer.id == offer_id, Offer.agent_id == user_id, Offer.seen_at.is_(None))
        .values(seen_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


@sock.route("/ws", bp=bp)
def websocket(ws: Server) -> None:
    app = current_app._get_current_object()
    user = current_user._get_current_object()
    user_id, account_id = user.id, user.account_id
    receives = user.can(RECEIVE)
    # send_state works in a session of its own: end this one's transaction
    # first. A thread holding one transaction while waiting on another
    # connection deadlocks as soon as a lock request (a migration's ALTER,
    # a TRUNCATE) queues between the two, and a burst of handshakes each
    # holding one pooled connection and waiting for a second drains the pool.
    db.session.remove()
    conn = Connection(ws, user_id, account_id)
    try:
        presence.touch(account_id, user_id)
        hub.register(app, conn)
        send_state(app, user_id, only=conn)
        if receives:
            route_soon(agent_id=user_id)
        # Nothing below needs a connection while we wait on the socket.
        db.session.remove()
        last_touch = time.monotonic()
        while True:
            message = ws.receive(timeout=presence.HEARTBEAT_SECONDS)
            if time.monotonic() - last_touch >= presence.HEARTBEAT_SECONDS:
                last_touch = time.monotonic()
                try:
                    presence.touch(account_id, user_id)
                except redis.RedisError:
                    # Redis is restarting: keep the socket; the next beat
                    # puts the mark back.
                    log.warning("presence heartbeat failed for user %s", user_id)
            if message:
                _mark_seen(user_id, message)
                db.session.remove()
    finally:
        conn.stop()
        if hub.unregister(conn) == 0 and not conn.closed_by_server:
            # The grace period counts from the last socket's close.
            with contextlib.suppress(redis.RedisError):
                presence.touch(account_id, user_id)
        db.session.remove()
