"""Contact benchmarks (issue #3).

Seeds 1,000,000 contacts over 200 agents (target: under 3 minutes), then
prints the server time of the contact list, median and p95 over 200
requests each (target p95 <= 50 ms): a manager's unassigned list, an
agent's own contacts, a phone-prefix and a name search, and page 50 reached
by following the list's cursors. Last, self-claims per second through HTTP
against real threaded servers (target >= 200/s): many signed-in agents
claiming distinct unassigned contacts at once for ten seconds.

    .venv/bin/python -m bench.contacts                      # SQLite
    .venv/bin/python -m bench.contacts --db-file /tmp/c.db --reuse
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \
        REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python -m bench.contacts

`--reuse` keeps a database that already holds the contacts (SQLite file or
PostgreSQL database) instead of seeding again; claims then take contacts
that are still unassigned.

List times are measured in-process through the WSGI app (Flask's test
client), as bench/pages.py does: only what the server does for the request.
Claims go through a real server (gunicorn with threaded workers, as in
production, and the threaded development server `make run` starts), from
client processes on the same machine.
"""

from __future__ import annotations

import argparse
import html
import multiprocessing
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from bench.common import make_app, summary, timed, verdict
from bench.pages import PASSWORD, signed_in_client
from bench.seed_contacts import (
    check_sqlite_time_format,
    contact_count,
    load_people,
    seed_contacts,
    seed_people,
)
from tests.live_http import Agent, sign_in_all, start_server

SEED_TARGET_S = 180
LIST_TARGET_MS = 50
CLAIMS_TARGET = 200
WARMUP_CLAIMS = 5
_NEXT_CURSOR = re.compile(r'href="[^"]*[?&;]cursor=([^"&]+)[^"]*"')


# --- the app and the data -----------------------------------------------------


def open_app(database_url: str, fresh: bool):
    """A migrated app on `database_url`; `fresh` starts from an empty schema."""
    if fresh:
        return make_app(database_url)
    from flask_migrate import upgrade

    from portal import create_app
    from portal.settings.service import bootstrap_account

    instance = Path(tempfile.mkdtemp(prefix="roleta-bench-"))
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": os.environ.get("REDIS_URL") or None,
            "LOGIN_FAILURE_LIMIT": "1000 per minute",
        }
    )
    with app.app_context():
        upgrade()
        bootstrap_account()
    return app


def prepare(args) -> tuple[object, object]:
    """The app and its people, seeding unless --reuse finds them."""
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        db_file = Path(args.db_file or tempfile.mkdtemp(prefix="roleta-bench-"))
        if db_file.is_dir():
            db_file = db_file / "contacts.db"
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{db_file}"
    if args.reuse:
        app = open_app(database_url, fresh=False)
        people = load_people(app)
        count = contact_count(app)
        if people and count >= args.contacts:
            print(f"reusing {count} contacts and {len(people.agent_ids)} agents")
            return app, people
        print(f"the database holds {count} contacts: seeding it again")
    app = open_app(database_url, fresh=True)
    check_sqlite_time_format(app)
    started = time.perf_counter()
    people = seed_people(app, args.agents)
    phases = seed_contacts(app, people, args.contacts)
    total = time.perf_counter() - started
    detail = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
    print(
        f"seeded {args.contacts} contacts over {args.agents} agents in "
        f"{total:.1f} s ({detail}) -> {verdict(total, SEED_TARGET_S)} "
        f"(target < {SEED_TARGET_S} s)"
    )
    return app, people


def samples_from_data(app) -> dict[str, str]:
    """A real phone prefix and name prefix to search for."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Contact

    with app.app_context():
        top = db.session.scalar(select(func.max(Contact.id))) or 0
        middle = db.session.scalar(
            select(Contact.id)
            .where(Contact.id >= top // 2, Contact.phone_national.is_not(None))
            .order_by(Contact.id)
            .limit(1)
        )
        contact = db.session.get(Contact, middle)
        first, second = contact.name.split()[:2]
        return {"phone": contact.phone_national[:6], "name": f"{first} {second[:2]}"}


# --- list timings -------------------------------------------------------------


def next_page_url(page: str, base: str) -> str | None:
    found = _NEXT_CURSOR.findall(page)
    if not found:
        return None
    cursor = html.unescape(found[-1])
    return f"{base}&cursor={cursor}"


def list_timings(app, people, requests: int) -> list[tuple[str, dict]]:
    samples = samples_from_data(app)
    manager = signed_in_client(app, people.manager_email)
    admin = signed_in_client(app, people.admin_email)
    agent = signed_in_client(app, people.attendant_email)
    hx = {"HX-Request": "true"}

    def getter(client, url: str, headers=None):
        def fetch():
            response = client.get(url, headers=headers)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return fetch

    phone_q = f"/contacts?q={samples['phone']}"
    name_q = "/contacts?q=" + samples["name"].replace(" ", "+")
    cases = [
        ("manager: unassigned (page)", manager, "/contacts?owner=unassigned", None),
        ("manager: unassigned (htmx)", manager, "/contacts?owner=unassigned", hx),
        ("admin: unassigned (page)", admin, "/contacts?owner=unassigned", None),
        ("agent: mine (page)", agent, "/contacts?owner=me", None),
        (f"admin: phone prefix {samples['phone']}", admin, phone_q, None),
        (f"manager: phone prefix {samples['phone']}", manager, phone_q, None),
        (f"admin: name prefix {samples['name']!r}", admin, name_q, None),
        (f"agent: name prefix {samples['name']!r}", agent, name_q, None),
    ]
    results = []
    for label, client, url, headers in cases:
        stats = summary(timed(getter(client, url, headers), requests))
        results.append((label, stats))
        print_stats(label, stats)

    for label, client, base in (
        (
            "manager: unassigned, page 50 by cursor",
            manager,
            "/contacts?owner=unassigned",
        ),
        ("admin: all contacts, page 50 by cursor", admin, "/contacts?sort=newest"),
    ):
        url = base
        for _ in range(49):
            page = getter(client, url)().get_data(as_text=True)
            url = next_page_url(page, base)
            if url is None:
                break
        if url is None:
            print(f"  {label}: SKIPPED, the list gave no next-page link")
            continue
        stats = summary(timed(getter(client, url), requests))
        results.append((label, stats))
        print_stats(label, stats)
    return results


def print_stats(label: str, stats: dict) -> None:
    print(
        f"  {label}: median {stats['median_ms']} ms, p95 {stats['p95_ms']} ms, "
        f"max {stats['max_ms']} ms over {stats['n']} -> "
        f"{verdict(stats['p95_ms'], LIST_TARGET_MS)} (p95 <= {LIST_TARGET_MS} ms)"
    )


# --- claims per second through HTTP ------------------------------------------


def claim_for(agents: list[Agent], id_lists, seconds, barrier, results) -> None:
    """In a child process: each agent (a thread) claims its own contacts
    one after the other until `seconds` have passed since the common start.
    Puts [(ok, refused, [latency ms, ...]), ...] on `results`."""

    def work(agent: Agent, contact_ids: list[int]):
        # Warm-up, not counted: every server process compiles its templates
        # and fills its pools on its first requests.
        for contact_id in contact_ids[:WARMUP_CLAIMS]:
            agent.claim(contact_id)
        barrier.wait(timeout=120)
        deadline = time.perf_counter() + seconds
        ok = refused = 0
        latencies = []
        for contact_id in contact_ids[WARMUP_CLAIMS:]:
            if time.perf_counter() >= deadline:
                break
            start = time.perf_counter()
            status, _ = agent.claim(contact_id)
            latencies.append((time.perf_counter() - start) * 1000)
            if status == 200:
                ok += 1
            else:
                refused += 1
        return ok, refused, latencies

    threads = []
    found = []
    lock = threading.Lock()

    def run(agent, ids):
        outcome = work(agent, ids)
        with lock:
            found.append(outcome)

    for agent, ids in zip(agents, id_lists, strict=True):
        thread = threading.Thread(target=run, args=(agent, ids))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    results.put(found)


def claimable_ids(app, count: int) -> list[int]:
    """Unassigned contacts in no campaign: any agent may take them."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Contact

    with app.app_context():
        ids = list(
            db.session.scalars(
                select(Contact.id)
                .where(Contact.owner_id.is_(None), Contact.campaign_id.is_(None))
                .order_by(Contact.id.desc())
                .limit(count)
            )
        )
        db.session.remove()
    return ids


def claims_per_second(
    app,
    people,
    server_kind: str,
    agents: int,
    processes: int,
    seconds: float,
    workers: int,
    threads: int,
) -> float:
    from portal.redis_conn import redis_url

    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    instance = Path(tempfile.mkdtemp(prefix=f"roleta-claims-{server_kind}-"))
    server = start_server(
        server_kind,
        database_url,
        redis_url(app),
        instance,
        workers=workers,
        threads=threads,
    )
    try:
        emails = people.agent_emails[:agents]
        signed = sign_in_all(server.url, dict.fromkeys(emails, ""), PASSWORD)
        # More than anyone can claim in the time: 1,000/s is out of reach.
        per_agent = int(1000 * seconds / agents) + WARMUP_CLAIMS
        ids = claimable_ids(app, per_agent * agents)
        assert len(ids) == per_agent * agents, "not enough unassigned contacts left"
        id_lists = [ids[n::agents] for n in range(agents)]
        spawn = multiprocessing.get_context("spawn")
        barrier = spawn.Barrier(agents)
        results = spawn.Queue()
        children = []
        for p in range(processes):
            children.append(
                spawn.Process(
                    target=claim_for,
                    args=(
                        signed[p::processes],
                        id_lists[p::processes],
                        seconds,
                        barrier,
                        results,
                    ),
                )
            )
        for child in children:
            child.start()
        outcomes = [item for _ in children for item in results.get(timeout=300)]
        for child in children:
            child.join(timeout=30)
        server.check_running()
    finally:
        server.stop()
    server_label = (
        f"gunicorn {workers} workers x {threads} threads"
        if server_kind == "gunicorn"
        else "flask run --with-threads"
    )
    ok = sum(o for o, _, _ in outcomes)
    refused = sum(r for _, r, _ in outcomes)
    latencies = [ms for _, _, lat in outcomes for ms in lat]
    rate = ok / seconds
    stats = summary(latencies) if latencies else {"median_ms": 0, "p95_ms": 0}
    print(
        f"  self-claims via HTTP ({server_label}, {agents} agents in "
        f"{processes} client processes, {seconds:.0f} s): {ok} claimed, "
        f"{refused} refused, "
        f"{rate:.0f}/s, latency median {stats['median_ms']} ms p95 "
        f"{stats['p95_ms']} ms -> {verdict(rate, CLAIMS_TARGET, False)} "
        f"(target >= {CLAIMS_TARGET}/s)"
    )
    assert refused == 0, "a claim of a distinct unassigned contact was refused"
    return rate


# --- main -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db-file", help="SQLite file to seed (or reuse)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--claim-seconds", type=float, default=10)
    parser.add_argument("--claim-agents", type=int, default=32)
    parser.add_argument("--claim-processes", type=int, default=4)
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--servers", default="gunicorn,flask")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--claim-runs", type=int, default=1, help="repeat each claims figure"
    )
    args = parser.parse_args()

    app, people = prepare(args)
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    print(
        f"database: {db_kind}; contacts: {contact_count(app)}; "
        f"requests per figure: {args.requests}; CPUs: {os.cpu_count()}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_list:
        print("contact list, server time in-process:")
        list_timings(app, people, args.requests)
    if not args.skip_claims:
        print("claims through HTTP:")
        for kind in args.servers.split(","):
            for _ in range(args.claim_runs):
                claims_per_second(
                    app,
                    people,
                    kind,
                    args.claim_agents,
                    args.claim_processes,
                    args.claim_seconds,
                    args.workers,
                    args.threads,
                )


if __name__ == "__main__":
    main()
