"""What one roulette request costs the server: CPU and SQL statements.

Seeds 200 agents (online, switched on) as bench/roulette.py does, holds the
router's lease by hand so that requests only wake it (as with a worker
running), and measures through the WSGI app (Flask's test client: no
network, no other load):

- the intake, `POST /api/v1/leads`;
- an agent's Accept and Decline, `POST /offers/<id>/accept|decline`;
- one router pass (`routing.dispatch` with the router's roster cache) that
  places one new lead, and one over a queue of waiting leads nobody is free
  to take.

Prints the median CPU time per call over --rounds rounds and the SQL
statements per call. These explain bench/roulette.py's figures; they have
no targets of their own.

    .venv/bin/python -m bench.roulette_requests            # SQLite + embedded Redis
    DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://... \
        .venv/bin/python -m bench.roulette_requests
"""

from __future__ import annotations

import argparse
import cProfile
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.roulette import BENCH_ENV, DEPARTMENT, PASSWORD, seed

os.environ.update(BENCH_ENV)


class Counter:
    """Statements the engine runs (a listener on every Engine)."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._one)

    def _one(self, *_args: object) -> None:
        self.count += 1


def measure(
    label: str,
    calls: int,
    rounds: int,
    step: Callable[[], None],
    sql: Counter,
    profile_dir: Path | None = None,
) -> None:
    """Median CPU ms per call over `rounds` rounds of `calls` calls. With
    `profile_dir`, one more round runs under cProfile, its statistics
    written to profile_dir/<label>.pstats (read them with `python -m
    pstats`)."""
    per_call = []
    statements = 0
    for _ in range(rounds):
        before = sql.count
        started = time.process_time()
        for _ in range(calls):
            step()
        per_call.append((time.process_time() - started) * 1000 / calls)
        statements = (sql.count - before) / calls
    if profile_dir is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            step()
        profiler.disable()
        name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        profiler.dump_stats(profile_dir / f"{name}.pstats")
    print(
        f"  {label}: {statistics.median(per_call):.2f} ms CPU per call "
        f"(rounds {', '.join(f'{v:.2f}' for v in per_call)}), "
        f"{statements:.1f} SQL statements per call"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--calls", type=int, default=50, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cprofile",
        type=Path,
        metavar="DIR",
        help="profile one more round of each measure; pstats files in DIR",
    )
    args = parser.parse_args()

    from sqlalchemy import select

    from bench.common import make_app
    from portal.apikeys import service as keys
    from portal.extensions import db
    from portal.models import Offer, OfferState, User
    from portal.realtime import presence
    from portal.redis_conn import get_redis
    from portal.roulette import lease, pool, routing, switch
    from portal.settings.service import current_account
    from tests.conftest import PortalClient

    app = make_app()
    ids = seed(app, args.agents, timeout=3600, rounds=3)
    app.test_client_class = PortalClient
    with app.app_context():
        get_redis().set(lease.LEASE, "bench", px=3_600_000)
        account = current_account()
        secret = keys.create_key(account, "bench", sorted(keys.SCOPES)).secret
        for user in db.session.scalars(select(User).where(User.id.in_(ids.values()))):
            presence.touch(user.account_id, user.id)
            switch.set_available(user, True)
        db.session.remove()
    emails = {user_id: email for email, user_id in ids.items()}
    api = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    posted = iter(range(10**9))
    rosters = pool.RosterCache()
    clients: dict[int, PortalClient] = {}
    sql = Counter()

    def intake() -> None:
        n = next(posted)
        body = {"name": f"Lead {n}", "phone": f"+5511{n:09d}", "department": DEPARTMENT}
        response = api.post("/api/v1/leads", json=body, headers=headers, csrf=False)
        assert response.status_code == 201, response.data

    def dispatch() -> None:
        with app.app_context():
            routing.dispatch(current_account(), rosters=rosters)
            db.session.remove()

    def pending() -> list[tuple[int, int]]:
        with app.app_context():
            rows = db.session.execute(
                select(Offer.id, Offer.agent_id).where(
                    Offer.state == OfferState.PENDING
                )
            ).all()
            db.session.remove()
        return [tuple(row) for row in rows]

    def signed_in(user_id: int) -> PortalClient:
        if user_id not in clients:
            client = app.test_client()
            client.post("/login", data={"email": emails[user_id], "password": PASSWORD})
            clients[user_id] = client
        return clients[user_id]

    def answerer(kind: str, offers: list[tuple[int, int]]) -> Callable[[], None]:
        queue = iter(offers)

        def answer() -> None:
            offer_id, user_id = next(queue)
            response = signed_in(user_id).hx_post(f"/offers/{offer_id}/{kind}")
            assert response.status_code == 200, response.data[:200]

        return answer

    def placing_pass() -> None:
        # One new lead, one free agent: the pass places it; the agent's
        # answer (not measured) frees them again.
        intake()
        before = sql.count
        started = time.process_time()
        dispatch()
        placing.append(((time.process_time() - started) * 1000, sql.count - before))
        offer_id, user_id = pending()[0]
        signed_in(user_id).hx_post(f"/offers/{offer_id}/accept")

    total = args.calls * args.rounds
    print(
        f"roulette requests: {args.agents} agents, "
        f"{app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}; "
        f"{args.rounds} rounds of {args.calls} calls"
    )
    for _ in range(20):  # warm the caches: templates, statements, sign-ins
        intake()
    dispatch()
    for offer_id, user_id in pending():
        signed_in(user_id).hx_post(f"/offers/{offer_id}/accept")
    profile_dir = args.cprofile
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    measure(
        "intake POST /api/v1/leads", args.calls, args.rounds, intake, sql, profile_dir
    )
    dispatch()
    offers = pending()
    for _offer_id, user_id in offers:
        signed_in(user_id)
    half = min(len(offers) // 2, total)
    extra = 1 if profile_dir else 0  # the profiled round
    rounds = max(1, min(args.rounds, half // args.calls - extra))
    calls = max(1, half // (rounds + extra))
    accept = answerer("accept", offers[:half])
    measure("accept", calls, rounds, accept, sql, profile_dir)
    decline = answerer("decline", offers[half:])
    measure("decline", calls, rounds, decline, sql, profile_dir)
    # Everyone free again; then one pass per new lead.
    dispatch()
    for offer_id, user_id in pending():
        signed_in(user_id).hx_post(f"/offers/{offer_id}/accept")
    dispatch()
    for offer_id, user_id in pending():
        signed_in(user_id).hx_post(f"/offers/{offer_id}/accept")
    placing: list[tuple[float, int]] = []
    for _ in range(args.calls):
        placing_pass()
    print(
        f"  router pass placing one new lead: "
        f"{statistics.median(ms for ms, _ in placing):.2f} ms CPU, "
        f"{statistics.median(n for _, n in placing):.0f} SQL statements"
    )
    # Everyone busy, a queue of waiting leads: what a burst's pass costs.
    for _ in range(args.agents + 100):
        intake()
    dispatch()
    measure(
        "router pass over a queue, nobody free",
        10,
        args.rounds,
        dispatch,
        sql,
        profile_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
