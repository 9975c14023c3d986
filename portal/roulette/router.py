"""The router: one loop per deployment that offers waiting leads to agents.

Requests and jobs do not route by themselves while a router runs. A lead's
intake, a decision, an agent switching on or connecting: each commits, then
wakes the router and answers at once. The router runs `dispatch` for
every account with the roulette on, which plans the whole waiting queue
against one read of the pool. Under a burst that is one pass for many leads
instead of a full plan per lead in every request, and the web processes keep
their CPU for answering.

The promise: at most one router routes at a time, and while one does,
every wake-up is served by a pass that starts after it. It holds the
Redis lease of `portal.roulette.lease` (renewed on every turn of its loop)
and every worker runs a `Router` thread that takes the lease when it
lapses. When none holds it (no worker running, Redis briefly gone)
`lease.wake()` answers False and the caller routes by itself, as it did
before the router existed. Two routers for a moment (a lease lapsed while
its holder was stalled) are safe: the unique indexes on pending offers
(`portal.models.roulette`) let each lead and agent have one offer at most.

Wake-ups carry nothing but "look now": everything the router reads was
committed before the wake-up was sent, and wake-ups that arrive during a
pass are served by the next one together.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable

import redis
from flask import Flask
from sqlalchemy import select

from portal.database import reads_outside_transaction
from portal.extensions import db
from portal.models import Account
from portal.redis_conn import get_redis
from portal.roulette import lease
from portal.roulette.lease import FOR_LEAD, LEASE_MS, WAKE
from portal.roulette.pool import RosterCache
from portal.roulette.routing import dispatch

log = logging.getLogger(__name__)

RENEW_SECONDS = 0.5
# Without wake-ups the router still looks every so often: a wake-up lost with
# a Redis restart, or a lead whose department just opened, waits this long.
IDLE_SECONDS = 0.5


def dispatch_all(
    rosters: RosterCache | None = None, tick: Callable[[], None] | None = None
) -> int:
    """One pass: route the waiting leads of every account with the roulette
    on (`rosters`: the router's; `tick`: called between leads). Returns
    offers made."""
    reads_outside_transaction(db.session)
    accounts = list(db.session.scalars(_ROULETTE_ON))
    return sum(dispatch(account, rosters=rosters, tick=tick) for account in accounts)


# Built once: every pass runs it (see `portal.roulette.pool`).
_ROULETTE_ON = select(Account).where(Account.roulette_enabled.is_(True))


class LeaseLost(Exception):
    """Another router holds the lease now."""


class Router(threading.Thread):
    """The routing loop of one worker process (standing by while another
    process holds the lease)."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="roleta-router", daemon=True)
        self.app = app
        self.token = secrets.token_hex(8)
        self._renewed = 0.0
        self._passed = 0.0
        self.stopping = threading.Event()
        self.rosters = RosterCache()

    def hold(self, client: redis.Redis) -> bool:
        held = lease.hold(client, self.token)
        # Only a held lease counts as renewed: a standing-by router asks
        # again on every turn.
        self._renewed = time.monotonic() if held else 0.0
        return held

    def tick(self) -> None:
        """Within a pass: renew the lease every so often, so a long pass (a
        burst of leads) does not let it lapse, which would send every request
        back to routing by itself. Raises LeaseLost when another router took
        over meanwhile: this pass stops."""
        if self.renew_due() and not self.hold(get_redis(self.app)):
            raise LeaseLost()

    def renew_due(self) -> bool:
        return time.monotonic() - self._renewed >= RENEW_SECONDS

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                client = get_redis(self.app)
                # Renewed at most every RENEW_SECONDS: a burst's passes follow
                # each other closely, and each round trip delays an offer.
                if self.renew_due() and not self.hold(client):
                    self.stopping.wait(LEASE_MS / 3000)
                    continue
                woken = client.blpop([WAKE], timeout=IDLE_SECONDS)
                if woken:
                    # Every wake-up sent so far is served by this one pass.
                    pipe = client.pipeline()
                    pipe.lrange(WAKE, 0, -1).delete(WAKE)
                    about = {woken[1], *pipe.execute()[0]}
                    if self.nothing_to_do(about):
                        continue
                self.turn()
            except redis.RedisError as exc:
                log.warning("router lost Redis (%s); retrying", exc)
                self.stopping.wait(0.5)
            except Exception:  # a database blip: the next pass tries again
                log.exception("routing pass failed")
                self.stopping.wait(0.5)
        self.release()

    def nothing_to_do(self, about: set[bytes]) -> bool:
        """Only new leads, while the last pass (under IDLE_SECONDS ago) saw
        every agent busy: nobody could take them. Skipping spares a burst's
        every lead a pass over the whole queue; the next wake-up about an
        agent, or the idle look, offers them and records why they wait."""
        return (
            about == {FOR_LEAD.encode()}
            and self.rosters.nobody_free()
            and time.monotonic() - self._passed < IDLE_SECONDS
        )

    def turn(self) -> int:
        self._passed = time.monotonic()
        with self.app.app_context():
            try:
                return dispatch_all(self.rosters, self.tick)
            except LeaseLost:
                log.warning("another router took the lease during a pass")
                return 0
            finally:
                db.session.remove()

    def release(self) -> None:
        """Give the lease up at once, so a standing-by router takes over
        without waiting for it to lapse."""
        with contextlib.suppress(redis.RedisError):  # it lapses by itself
            lease.release(get_redis(self.app), self.token)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout=timeout)
