"""Dashboard benchmark (issue 13): the supervision dashboard at scale.

Seeds (bench/seed_contacts.py's people and contacts) 1,000,000 contacts over
200 agents, then one lead per contact with two offers each (2,000,000: the
first declined or run out, the second accepted seven times in ten, with its
speed to lead), and 5,000,000 timeline entries, spread over the last year.
Then prints the server time of GET /dashboard (the last 30 days) for the
admin (every agent) and the coordinator (two teams), p50 and p95 over
--runs requests each, in-process through the WSGI app as bench/pages.py
measures pages (target p95 <= 200 ms), beside a floor measured in the same
run: the one grouped count a single figure needs (open contacts per owner),
bare SQL through the same engine; and the ratio.

    .venv/bin/python -m bench.dashboard                   # SQLite
    .venv/bin/python -m bench.dashboard --contacts 200000 --runs 20
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python -m bench.dashboard

`--db-file F --reuse` keeps a seeded SQLite file between runs.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from itertools import islice

from bench.common import summary, timed, verdict
from bench.contacts import prepare
from bench.pages import signed_in_client
from bench.seed_contacts import People

TARGET_MS = 200
BATCH = 100_000
OFFER_STATES = ("declined", "expired")


def _rows_of_leads(people: People, first_id: int, last_id: int, seed: int):
    """(lead, its two offers, five timeline entries) per contact id."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    agents = people.agent_ids
    for contact_id in range(first_id, last_id + 1):
        arrived = now - timedelta(seconds=rng.randrange(365 * 86400))
        first, second = rng.sample(agents, 2)
        accepted = rng.random() < 0.7
        speed = rng.randrange(5, 600)
        lead = (
            contact_id,
            people.account_id,
            contact_id,
            "web",
            "site",
            "{}",
            "assigned" if accepted else "queued",
            arrived,
            2,
            second if accepted else None,
            arrived + timedelta(seconds=speed) if accepted else None,
            speed if accepted else None,
        )
        offers = [
            (people.account_id, contact_id, first, 1, rng.choice(OFFER_STATES),
             "turn", "[]", arrived, arrived + timedelta(seconds=60)),
            (people.account_id, contact_id, second, 1,
             "accepted" if accepted else "declined", "turn", "[]",
             arrived + timedelta(seconds=60), arrived + timedelta(seconds=120)),
        ]  # fmt: skip
        history = [
            (people.account_id, contact_id, "note", second, "called", "{}",
             arrived + timedelta(hours=n))
            for n in range(5)
        ]  # fmt: skip
        yield lead, offers, history


LEAD_SQL = (
    "INSERT INTO lead (id, account_id, contact_id, origin, source, custom, state, "
    "created_at, round, accepted_by_id, accepted_at, speed_to_lead_seconds) "
    "VALUES ({})"
)
OFFER_SQL = (
    "INSERT INTO offer (account_id, lead_id, agent_id, round, state, reason, "
    "candidates, offered_at, expires_at) VALUES ({})"
)
HISTORY_SQL = (
    "INSERT INTO history_entry (account_id, contact_id, kind, author_id, body, "
    "data, created_at) VALUES ({})"
)


def seed_activity(app, people: People) -> float:
    """Leads, offers and the timeline, bulk-loaded; returns the seconds."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Contact

    started = time.perf_counter()
    with app.app_context():
        first = db.session.scalar(select(func.min(Contact.id)))
        last = db.session.scalar(select(func.max(Contact.id)))
        db.session.remove()
        postgres = db.engine.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            rows = _rows_of_leads(people, first, last, seed=5)
            while chunk := list(islice(rows, BATCH // 2)):
                leads = [lead for lead, _o, _h in chunk]
                offers = [o for _l, pair, _h in chunk for o in pair]
                history = [h for _l, _o, entries in chunk for h in entries]
                if not postgres:
                    leads = [_sqlite_times(r, (7, 10)) for r in leads]
                    offers = [_sqlite_times(r, (7, 8)) for r in offers]
                    history = [_sqlite_times(r, (6,)) for r in history]
                cursor.executemany(LEAD_SQL.format(", ".join([mark] * 12)), leads)
                cursor.executemany(OFFER_SQL.format(", ".join([mark] * 9)), offers)
                cursor.executemany(HISTORY_SQL.format(", ".join([mark] * 7)), history)
                raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    return time.perf_counter() - started


def _sqlite_times(row: tuple, columns: tuple[int, ...]) -> tuple:
    values = list(row)
    for c in columns:
        if values[c] is not None:
            values[c] = values[c].strftime("%Y-%m-%d %H:%M:%S.%f")
    return tuple(values)


def floor_ms(app, people: People, runs: int) -> list[float]:
    """One figure's bare work: open contacts per owner, one grouped count."""
    from sqlalchemy import text

    from portal.extensions import db

    sql = text(
        "SELECT owner_id, count(*) FROM contact WHERE account_id = :a "
        "AND status IN ('new', 'assigned', 'in_progress') AND owner_id IS NOT NULL "
        "GROUP BY owner_id"
    )
    with app.app_context():

        def run() -> None:
            db.session.execute(sql, {"a": people.account_id}).all()

        samples = timed(run, runs, warmup=2)
        db.session.remove()
    return samples


def dashboard_ms(app, email: str, runs: int) -> list[float]:
    client = signed_in_client(app, email)

    def get() -> None:
        response = client.get("/dashboard")
        assert response.status_code == 200, response.status_code

    return timed(get, runs, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db-file", default=None)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    app, people = prepare(args)
    with app.app_context():
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import Offer

        offers = db.session.scalar(select(func.count()).select_from(Offer))
        db.session.remove()
    if not offers:
        seconds = seed_activity(app, people)
        print(
            f"seeded {args.contacts:,} leads, {2 * args.contacts:,} offers and "
            f"{5 * args.contacts:,} timeline entries in {seconds:.1f} s"
        )
    floor = summary(floor_ms(app, people, args.runs))
    print(f"floor (one grouped count, bare SQL): p50 {floor['median_ms']:.1f} ms, "
          f"p95 {floor['p95_ms']:.1f} ms")  # fmt: skip
    failed = False
    for who, email in (
        ("admin", people.admin_email),
        ("coordinator", people.coordinator_email),
    ):
        figures = summary(dashboard_ms(app, email, args.runs))
        ratio = figures["p95_ms"] / floor["p95_ms"] if floor["p95_ms"] else float("inf")
        outcome = verdict(figures["p95_ms"], TARGET_MS)
        failed = failed or outcome != "PASS"
        print(
            f"dashboard, {who}, 30 days: p50 {figures['median_ms']:.1f} ms, p95 "
            f"{figures['p95_ms']:.1f} ms ({ratio:.1f}x the floor's p95) -> {outcome} "
            f"(target p95 <= {TARGET_MS} ms)"
        )
    print(f"summary: {'FAIL' if failed else 'PASS'}")


if __name__ == "__main__":
    main()
