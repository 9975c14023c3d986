"""Roulette benchmark (issue 4): leads in, offers out, over real websockets.

Starts the production shape (gunicorn with threaded workers, serving pages,
the API and the websockets, plus one `flask --app app worker`), seeds N
agents (attendants of one department), signs each in over HTTP, switches
each available and connects one websocket per agent. Before the portal
starts, the floor runs (bench/roulette_floor.py): a bare Flask + flask-sock
app served by the same gunicorn, on the same Redis, with as many sockets,
posted to at the same rate for --floor-seconds; its POST -> frame p50/p99
is the yardstick for the portal's (targets: at most 3x and 5x). Then, with
every socket open, --idle-seconds of nothing (the CPU of heartbeats, the
sweeper and the router at rest), and:

1. steady: leads at --rate per second for --seconds through
   `POST /api/v1/leads`; agents accept (70 %) or decline after a random think
   time and leave every 20th offer to run out (offer timeout 10 s, the
   minimum). Measured: lead POST -> offer frame at the agent's socket
   (p50/p99), beside a bare Redis publish -> receive measured at the same
   time on the same Redis; expiry lateness (decided_at - expires_at);
   offers per agent (fairness).
2. flood: --flood-clients threads post leads back to back for
   --flood-seconds while the roulette routes them and the agents keep
   answering, at a person's pace now (think --flood-think-min..max, 4-9 s):
   leads per second, beside the offers placed and answers handled meanwhile.
   (At the steady phase's 0.2-1.5 s, 200 agents would post ~235 answers a
   second, each dearer than an intake; pass --flood-think-min 0.2
   --flood-think-max 1.5 to measure that.)
3. checks, after the queue drained: no lead lost or doubled, no agent or
   lead with two pending offers at any time, every offer's frames received
   exactly once by the right agent.

    .venv/bin/python -m bench.roulette                     # SQLite + embedded Redis
    .venv/bin/python -m bench.roulette --pg                # PostgreSQL + Redis db 8
    .venv/bin/python -m bench.roulette --agents 50 --seconds 10 --flood-seconds 5

`--pg` creates (and afterwards drops) the PostgreSQL database `helper_bench`
and uses Redis db 8; DATABASE_URL/REDIS_URL in the environment win over
both. `--intake direct` creates and routes leads in the load processes
through the service instead of HTTP (to tell the API's cost from the
roulette's); `--py-spy PATH` samples the server processes during each phase
(summary: `python -m bench.roulette_profile RAW_FOLDER`).

Why 2 gunicorn workers x 250 threads: one process per core (the GIL), and
every websocket holds a thread for its whole life while gunicorn does not
spread sockets evenly between workers (100/100 to 130/70 seen), so each
worker keeps well over 100 threads free for HTTP even when it holds most
of the 200 sockets. Passwords are hashed at a bench-sized Argon2 cost
(PASSWORD_HASH_TIME_COST=1, PASSWORD_HASH_MEMORY_KIB=8192) so 200 sign-ins
take seconds; sign-in is not what this measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bench.common import pct
from bench.roulette_agents import Login, Policy
from bench.roulette_cpu import CpuMeter, pids_named, process_tree, sockets_per_process
from bench.roulette_load import StartLine

PASSWORD = "bench-password-123"
DEPARTMENT = "sales"
PG_NAME = "helper_bench"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_REDIS_URL = "redis://127.0.0.1:6379/8"
LATENCY_P50_MS = 20
LATENCY_P99_MS = 100
EXPIRY_P99_S = 1.5
INTAKE_TARGET = 200
# Samples a second: at 50 a 20 s phase gave ~100 samples per worker, too
# few to tell a 1 ms cost from noise.
PY_SPY_RATE = 200
# Bench processes hash passwords cheaply (see the docstring).
BENCH_ENV = {
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "8192",
    # The intake API's per-key limit must not be what we measure.
    "API_RATE_LIMIT": "1000000 per minute",
}


# --- statistics -------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def epoch(moment: datetime | None) -> float | None:
    """A database timestamp as seconds since the epoch."""
    if moment is None:
        return None
    return moment.timestamp()


# --- CPU and load -----------------------------------------------------------------


def pg_backends(app) -> set[int]:
    """PostgreSQL server processes serving our database right now."""
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        pids = set(
            db.session.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database()"
                )
            )
        )
        db.session.remove()
    return pids


# --- database, seed, servers ------------------------------------------------------


def prepare_backends(args) -> tuple[str | None, str | None, bool]:
    """(database_url, redis_url, created_pg): None means the embedded default."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    created = False
    if args.pg and not database_url:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_NAME}")
        database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_NAME}"
        created = True
    if args.pg and not redis_url:
        redis_url = PG_REDIS_URL
    if redis_url:
        import redis

        # Our own db number: stale queues, presence or offers of an earlier
        # run would distort this one.
        redis.Redis.from_url(redis_url).flushdb()
    return database_url, redis_url, created


def drop_pg() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


def seed(app, agents: int, timeout: int, rounds: int) -> dict[str, int]:
    """N attendants in one department, an admin; roulette on. {email: id}."""
    from sqlalchemy import insert, select

    from portal.auth.service import hash_password
    from portal.extensions import db
    from portal.models import Role, User
    from portal.models.org import department_member
    from portal.org import structure
    from portal.settings.service import current_account, update_settings

    with app.app_context():
        account = current_account()
        department = structure.get_or_create_department(account, DEPARTMENT)
        db.session.commit()
        roles = {r.key: r.id for r in db.session.scalars(select(Role))}
        password_hash = hash_password(PASSWORD)
        rows = [
            {
                "account_id": account.id,
                "email": "admin@bench.example",
                "name": "Bench Admin",
                "role_id": roles["admin"],
                "password_hash": password_hash,
                "status": "active",
                "is_restricted": False,
                "receives_web_leads": False,
                "creates_store_leads": False,
                "session_version": 1,
            }
        ]
        for i in range(agents):
            rows.append(
                {
                    "account_id": account.id,
                    "email": f"agent{i:04d}@bench.example",
                    "name": f"Bench Agent {i:04d}",
                    "role_id": roles["attendant"],
                    "password_hash": password_hash,
                    "status": "active",
                    "is_restricted": True,
                    "receives_web_leads": True,
                    "creates_store_leads": False,
                    "session_version": 1,
                }
            )
        db.session.execute(insert(User), rows)
        ids = dict(
            db.session.execute(
                select(User.email, User.id).where(User.email.like("agent%"))
            ).all()
        )
        db.session.execute(
            insert(department_member),
            [{"department_id": department.id, "user_id": i} for i in ids.values()],
        )
        db.session.commit()
        update_settings(
            current_account(),
            {
                "roulette.enabled": "true",
                "roulette.offer_timeout": str(timeout),
                "roulette.rounds": str(rounds),
            },
        )
        db.session.remove()
    return ids


def create_api_key(env: dict[str, str]) -> str:
    """A key through the CLI the README documents (it prints the key once)."""
    import subprocess

    from tests.live_http import VENV_BIN

    done = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", "api-key", "create", "bench"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # The key alone on stdout; the note about it goes to stderr.
    return done.stdout.strip().splitlines()[0]


def server_env(database_url: str, redis_url: str, instance: Path, url: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLASK_", "WERKZEUG_"))
    }
    env.update(
        PORTAL_INSTANCE=str(instance),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_URL=url,
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        PYTHONUNBUFFERED="1",
        **BENCH_ENV,
    )
    return env


def start_portal(database_url: str, redis_url: str, workers: int, threads: int):
    """gunicorn (gthread) and one `flask worker`, once both are up."""
    import redis
    from rq import Worker

    from tests.browser.conftest import LiveServer
    from tests.live_http import VENV_BIN, free_port, server_command

    instance = Path(tempfile.mkdtemp(prefix="roleta-roulette-"))
    port = free_port()
    server = LiveServer(url=f"http://127.0.0.1:{port}", instance=instance)
    env = server_env(database_url, redis_url, instance, server.url)
    server.env = env
    server.port = port
    command = server_command("gunicorn", port, workers, threads)
    server.start("web", command, env)
    server.start("worker", [str(VENV_BIN / "flask"), "--app", "app", "worker"], env)
    try:
        server.wait_healthy(timeout=60)
        connection = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while not Worker.all(connection=connection):
            server.check_running()
            if time.monotonic() > deadline:
                raise AssertionError("the worker never registered with Redis")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    return server


def profile(py_spy: str | None, server, work: Path, phase: str, seconds: float):
    """Sample each gunicorn worker and the RQ worker for `seconds` (py-spy,
    non-blocking: the processes are not paused), writing collapsed stacks
    to work/<phase>-<name>-<pid>.txt. Does nothing without py-spy."""
    import subprocess

    if not py_spy:
        return
    web = sorted(process_tree([server.processes["web"].pid]))[1:]
    targets = [("web", pid) for pid in web]
    targets.append(("worker", server.processes["worker"].pid))
    for name, pid in targets:
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--nonblocking",
                # Only the thread holding the GIL: of a worker's 250 threads
                # the waiting ones would otherwise pass for busy.
                "--gil",
                "--rate",
                str(PY_SPY_RATE),
                "--format",
                "raw",
                "--duration",
                str(int(seconds)),
                "--pid",
                str(pid),
                "--output",
                str(work / f"{phase}-{name}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def routing_give_ups(server) -> int:
    """Leads whose routing gave up after too many collisions (the roulette
    logs a warning; the lead waits for the sweep)."""
    count = 0
    for name in server.processes:
        path = server.log_path(name)
        if path.exists():
            count += path.read_text(errors="replace").count("gave up routing")
    return count


def log_problems(server) -> list[str]:
    """Each traceback in the server processes' logs, by its exception line."""
    found = []
    for name in server.processes:
        path = server.log_path(name)
        if not path.exists():
            continue
        lines = path.read_text(errors="replace").splitlines()
        for n, line in enumerate(lines):
            if not line.startswith("Traceback"):
                continue
            last = next(
                (
                    later
                    for later in lines[n + 1 :]
                    if later and not later.startswith((" ", "Traceback"))
                ),
                "?",
            )
            found.append(f"{name}: {last}")
    return found


# --- running the load --------------------------------------------------------------


def sign_in(base_url: str, ids: dict[str, int], agents: int) -> list[Login]:
    from tests.live_http import sign_in_all

    emails = sorted(ids)[:agents]
    signed = sign_in_all(base_url, {e: e for e in emails}, PASSWORD, parallel=8)
    return [
        Login(user_id=ids[a.name], cookies=dict(a.cookies), csrf_token=a.csrf_token)
        for a in signed
    ]


def run_child(spawn, target, args: tuple):
    process = spawn.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def wait_drained(app, timeout: float) -> tuple[float, dict[str, int]]:
    """Poll until no lead is queued or offered; (seconds waited, lead states)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Lead

    start = time.monotonic()
    states: dict[str, int] = {}
    with app.app_context():
        while time.monotonic() - start < timeout:
            states = dict(
                db.session.execute(
                    select(Lead.state, func.count()).group_by(Lead.state)
                ).all()
            )
            db.session.rollback()
            if not states.get("queued") and not states.get("offered"):
                break
            time.sleep(0.5)
        db.session.remove()
    return time.monotonic() - start, states


def presence_counts(app) -> tuple[int, int]:
    """(agents switched on in the database, agents live in Redis)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import AgentState
    from portal.realtime import presence
    from portal.settings.service import current_account

    with app.app_context():
        available = db.session.scalar(
            select(func.count()).where(AgentState.available.is_(True))
        )
        live = len(presence.live_user_ids(current_account().id))
        db.session.remove()
    return available, live


class PendingWatch(threading.Thread):
    """Polls the database during the run: any agent or lead holding two
    pending offers at the moment of a poll (the partial unique indexes
    forbid it; this watches that they do)."""

    def __init__(self, app, every_s: float = 0.2) -> None:
        super().__init__(name="pending-watch", daemon=True)
        self.app = app
        self.every_s = every_s
        self.stopping = threading.Event()
        self.polls = 0
        self.agent_doubles = 0
        self.lead_doubles = 0

    def run(self) -> None:
        from sqlalchemy import func, select

        from portal.extensions import db
        from portal.models import Offer

        def doubles(column) -> int:
            return len(
                db.session.execute(
                    select(column)
                    .where(Offer.state == "pending")
                    .group_by(column)
                    .having(func.count() > 1)
                ).all()
            )

        with self.app.app_context():
            while not self.stopping.wait(self.every_s):
                self.agent_doubles += doubles(Offer.agent_id)
                self.lead_doubles += doubles(Offer.lead_id)
                db.session.rollback()
                self.polls += 1
            db.session.remove()


# --- reading the outcome -----------------------------------------------------------


def load_offers(app) -> list[dict]:
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Offer

    with app.app_context():
        rows = db.session.execute(
            select(
                Offer.id,
                Offer.lead_id,
                Offer.agent_id,
                Offer.state,
                Offer.round,
                Offer.offered_at,
                Offer.expires_at,
                Offer.decided_at,
            ).order_by(Offer.id)
        ).all()
        db.session.remove()
    return [
        {
            "id": r.id,
            "lead_id": r.lead_id,
            "agent_id": r.agent_id,
            "state": r.state,
            "round": r.round,
            "offered_at": epoch(r.offered_at),
            "expires_at": epoch(r.expires_at),
            "decided_at": epoch(r.decided_at),
        }
        for r in rows
    ]


def load_leads(app) -> list[dict]:
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Contact, Lead

    with app.app_context():
        rows = db.session.execute(
            select(
                Lead.id,
                Lead.state,
                Lead.routing,
                Lead.accepted_by_id,
                Contact.owner_id,
            ).join(Contact, Contact.id == Lead.contact_id)
        ).all()
        db.session.remove()
    return [
        {
            "id": r.id,
            "state": r.state,
            "routing": r.routing,
            "accepted_by": r.accepted_by_id,
            "owner": r.owner_id,
        }
        for r in rows
    ]


def stamp_overlaps(offers: list[dict], key: str) -> list[float]:
    """By how much an offer was stamped (offered_at) before the previous
    offer of the same agent (key "agent_id") or lead ("lead_id") was
    decided, where it was: routing stamps an offer when it starts planning,
    and places it after its reads, which may be stale by then."""
    by_key = defaultdict(list)
    for offer in offers:
        by_key[offer[key]].append(offer)
    found = []
    for items in by_key.values():
        items.sort(key=lambda o: o["offered_at"])
        for previous, offer in zip(items, items[1:], strict=False):
            if previous["decided_at"] and offer["offered_at"] < previous["decided_at"]:
                found.append(previous["decided_at"] - offer["offered_at"])
    return found


def consistency(
    offers: list[dict],
    leads: list[dict],
    posted: list[dict],
    agents_out: dict,
    watch: PendingWatch,
) -> list[tuple[str, int]]:
    """Every 'lost or doubled' check as (description, count that must be 0)."""
    by_lead = defaultdict(list)
    for offer in offers:
        by_lead[offer["lead_id"]].append(offer)
    lead_rows = {lead["id"]: lead for lead in leads}
    created = [p for p in posted if p["status"] == 201]
    created_ids = [p["lead_id"] for p in created]
    checks: list[tuple[str, int]] = []
    checks.append(("intake requests that failed (not 201)", len(posted) - len(created)))
    checks.append(
        (
            "leads answered 201 but not in the database",
            sum(1 for i in created_ids if i not in lead_rows),
        )
    )
    checks.append(("lead ids answered twice", len(created_ids) - len(set(created_ids))))
    checks.append(
        ("leads in the database nobody posted", len(set(lead_rows) - set(created_ids)))
    )
    checks.append(
        (
            "leads queued without a reason",
            sum(
                1 for lead in leads if lead["state"] == "queued" and not lead["routing"]
            ),
        )
    )
    checks.append(
        (
            "leads in no known state",
            sum(
                1
                for lead in leads
                if lead["state"] not in ("queued", "offered", "assigned")
            ),
        )
    )
    accepted = {
        lead_id: [o for o in items if o["state"] == "accepted"]
        for lead_id, items in by_lead.items()
    }
    checks.append(
        (
            "leads accepted more than once",
            sum(1 for items in accepted.values() if len(items) > 1),
        )
    )
    wrong_owner = 0
    for lead in leads:
        taken = accepted.get(lead["id"], [])
        if lead["state"] == "assigned":
            if (
                len(taken) != 1
                or lead["accepted_by"] != taken[0]["agent_id"]
                or lead["owner"] != taken[0]["agent_id"]
            ):
                wrong_owner += 1
        elif taken:
            wrong_owner += 1
    checks.append(("assigned leads whose owner is not the one accepter", wrong_owner))
    checks.append(
        (
            "offered leads without exactly one pending offer",
            sum(
                1
                for lead in leads
                if lead["state"] == "offered"
                and sum(o["state"] == "pending" for o in by_lead[lead["id"]]) != 1
            ),
        )
    )

    asked = Counter((o["lead_id"], o["agent_id"], o["round"]) for o in offers)
    checks.append(
        (
            "an agent asked twice for the same lead in one round",
            sum(n - 1 for n in asked.values() if n > 1),
        )
    )
    checks.append(
        (
            f"agents seen holding two pending offers ({watch.polls} polls)",
            watch.agent_doubles,
        )
    )
    checks.append(
        (
            f"leads seen with two pending offers ({watch.polls} polls)",
            watch.lead_doubles,
        )
    )
    # Frames against offers.
    offer_rows = {o["id"]: o for o in offers}
    pending_frames = Counter()
    end_frames = Counter()
    misdelivered = 0
    wrong_state = 0
    unknown = 0
    for frame in agents_out["frames"]:
        offer = offer_rows.get(frame["offer_id"])
        if offer is None:
            unknown += 1
            continue
        if (
            frame["agent_id"] != offer["agent_id"]
            or frame["lead_id"] != offer["lead_id"]
        ):
            misdelivered += 1
        if frame["state"] == "pending":
            pending_frames[frame["offer_id"]] += 1
        else:
            end_frames[frame["offer_id"]] += 1
            if frame["state"] != offer["state"]:
                wrong_state += 1
    checks.append(
        (
            "offers whose pop-up never reached the agent",
            sum(1 for i in offer_rows if pending_frames[i] == 0),
        )
    )
    checks.append(
        (
            "offers whose pop-up arrived more than once",
            sum(1 for i in offer_rows if pending_frames[i] > 1),
        )
    )
    ended = [o for o in offers if o["state"] != "pending"]
    checks.append(
        (
            "ended offers whose end never reached the agent",
            sum(1 for o in ended if end_frames[o["id"]] == 0),
        )
    )
    checks.append(
        (
            "ended offers whose end arrived more than once",
            sum(1 for o in ended if end_frames[o["id"]] > 1),
        )
    )
    checks.append(("frames for offers not in the database", unknown))
    checks.append(("frames at the wrong agent or naming the wrong lead", misdelivered))
    checks.append(("end frames whose state differs from the database", wrong_state))
    statuses = Counter(a["status"] for a in agents_out["answers"])
    # 409 (the offer ran out before the answer came) is the roulette doing
    # its job when the server is slow; it is reported apart.
    checks.append(
        (
            "accept/decline answers failed (not 200 or 409)",
            sum(n for status, n in statuses.items() if status not in (200, 409)),
        )
    )
    ignored = set(agents_out["ignored"])
    checks.append(
        (
            "offers left to run out that did not expire",
            sum(1 for o in offers if o["id"] in ignored and o["state"] != "expired"),
        )
    )
    return checks


# --- the report --------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def offer_latencies(posted: list[dict], frames: list[dict]) -> list[float]:
    """Seconds from each created lead's POST to its first offer frame."""
    first_frame: dict[int, float] = {}
    for frame in frames:
        if frame["state"] == "pending":
            lead = frame["lead_id"]
            if lead not in first_frame or frame["at"] < first_frame[lead]:
                first_frame[lead] = frame["at"]
    return [
        first_frame[p["lead_id"]] - p["sent"]
        for p in posted
        if p["status"] == 201 and p["lead_id"] in first_frame
    ]


def report_latency(
    posted: list[dict], frames: list[dict], baseline: dict
) -> tuple[list[str], bool]:
    created = [p for p in posted if p["status"] == 201]
    latencies = offer_latencies(posted, frames)
    immediate = [p for p in created if p["state"] == "offered"]
    lines = []
    ok = False
    post_times = [p["done"] - p["sent"] for p in created]
    late_sends = [p["sent"] - p["due"] for p in posted]
    if latencies:
        p50, p99 = pct(latencies, 50), pct(latencies, 99)
        ok = p50 <= LATENCY_P50_MS / 1000 and p99 <= LATENCY_P99_MS / 1000
        lines.append(
            f"  lead POST -> offer frame at the agent's socket: p50 {ms(p50)} "
            f"{verdict(p50 <= LATENCY_P50_MS / 1000)} (target <= {LATENCY_P50_MS} ms), "
            f"p99 {ms(p99)} {verdict(p99 <= LATENCY_P99_MS / 1000)} "
            f"(target <= {LATENCY_P99_MS} ms), max {ms(max(latencies))}; "
            f"{len(latencies)} of {len(created)} leads, {len(immediate)} offered "
            f"at intake"
        )
    else:
        lines.append("  lead POST -> offer frame: no offer frame matched a lead: FAIL")
    arrivals = baseline.get("arrivals", [])
    if arrivals:
        bare = [received - sent for sent, received in arrivals]
        lines.append(
            f"  bare Redis publish -> receive, same run and Redis: p50 "
            f"{ms(pct(bare, 50))}, p99 {ms(pct(bare, 99))}, max {ms(max(bare))} "
            f"({len(arrivals)} of {baseline['published']} messages)"
        )
    if post_times:
        span = max(p["sent"] for p in posted) - min(p["sent"] for p in posted)
        achieved = len(posted) / span if span > 0 else 0.0
        lines.append(
            f"  lead POST answered (201) in: p50 {ms(pct(post_times, 50))}, "
            f"p99 {ms(pct(post_times, 99))}; sends behind schedule p99 "
            f"{ms(pct(late_sends, 99))} (rate achieved {achieved:.1f} leads/s: "
            "the intake's threads wait for answers, so a slow server slows it)"
        )
    return lines, ok


def report_expiry(
    offers: list[dict], frames: list[dict], window: tuple[float, float], label: str
) -> tuple[list[str], bool | None]:
    expired = [
        o
        for o in offers
        if o["state"] == "expired" and window[0] <= o["offered_at"] < window[1]
    ]
    if not expired:
        return [f"  expiry lateness ({label}): no offer expired"], None
    late = [o["decided_at"] - o["expires_at"] for o in expired]
    seen = {f["offer_id"]: f["at"] for f in frames if f["state"] == "expired"}
    by_id = {o["id"]: o for o in expired}
    frame_late = [at - by_id[i]["expires_at"] for i, at in seen.items() if i in by_id]
    p99 = pct(late, 99)
    line = (
        f"  expiry lateness ({label}, decided_at - expires_at over {len(late)} "
        f"offers): p50 {pct(late, 50):.2f} s, p99 {p99:.2f} s, max {max(late):.2f} s"
    )
    ok = p99 <= EXPIRY_P99_S
    line += f" {verdict(ok)} (target p99 <= {EXPIRY_P99_S} s)"
    lines = [line]
    if frame_late:
        lines.append(
            f"    'expired' frame at the agent's socket after expires_at: p50 "
            f"{pct(frame_late, 50):.2f} s, p99 {pct(frame_late, 99):.2f} s, max "
            f"{max(frame_late):.2f} s"
        )
    return lines, ok


def report_fairness(
    offers: list[dict], agent_ids: list[int], window: tuple[float, float]
) -> tuple[list[str], bool]:
    counts = Counter(
        o["agent_id"] for o in offers if window[0] <= o["offered_at"] < window[1]
    )
    per_agent = [counts.get(i, 0) for i in agent_ids]
    total = sum(per_agent)
    mean = total / len(per_agent)
    stdev = statistics.pstdev(per_agent)
    # A fair turn keeps everyone within a few offers of the mean; a random
    # pick among the free agents would spread them like Poisson (sd = sqrt(mean)).
    random_sd = mean**0.5
    spread_ok = stdev <= random_sd and min(per_agent) >= 1
    return [
        f"  offers per agent (steady phase, {total} offers over "
        f"{len(per_agent)} agents): min {min(per_agent)}, median "
        f"{statistics.median(per_agent):g}, max {max(per_agent)}, mean "
        f"{mean:.2f}, stddev {stdev:.2f} vs {random_sd:.2f} for a random pick "
        f"-> {verdict(spread_ok)} (target: stddev below a random pick's, "
        f"nobody left out)"
    ], spread_ok


def load_json(path: Path):
    with path.open() as fh:
        return json.load(fh)


# --- main -------------------------------------------------------------------------


def main() -> int:  # noqa: C901 (one straight script, phase after phase)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="steady leads/s")
    parser.add_argument("--seconds", type=float, default=60, help="steady phase")
    parser.add_argument("--timeout", type=int, default=10, help="offer timeout, s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--accept", type=float, default=0.7, help="share accepted")
    parser.add_argument("--think-min", type=float, default=0.2)
    parser.add_argument("--think-max", type=float, default=1.5)
    parser.add_argument(
        "--flood-think-min",
        type=float,
        default=4.0,
        help="agents' think time during the flood (a person's pace)",
    )
    parser.add_argument("--flood-think-max", type=float, default=9.0)
    parser.add_argument(
        "--ignore-every", type=int, default=20, help="leave offer ids %% N to expire"
    )
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=None,
        help="the floor's run (default: as long as the steady phase; 0: none)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5,
        help="CPU with every socket open and no lead, before the steady phase",
    )
    parser.add_argument("--flood-seconds", type=float, default=10)
    parser.add_argument("--flood-clients", type=int, default=16)
    parser.add_argument("--flood-processes", type=int, default=2)
    parser.add_argument("--steady-threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=250, help="per worker")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL + Redis db 8")
    parser.add_argument("--intake", choices=("api", "direct"), default="api")
    parser.add_argument("--keep", action="store_true", help="keep the PG database")
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="profile the web and worker processes during each phase with this "
        "py-spy binary (collapsed stacks in the raw records folder)",
    )
    args = parser.parse_args()

    if args.pg:
        # More connections for 250 threads a process, with the three
        # processes within PostgreSQL's max_connections (100 here). SQLite
        # keeps the default 5 + 10: more connections there only means more
        # writers polling for its one write lock (30 + 30 doubled the
        # answers' waits and made some give up with "database is locked").
        BENCH_ENV.update(DATABASE_POOL_SIZE="15", DATABASE_MAX_OVERFLOW="10")
    os.environ.update(BENCH_ENV)
    from bench.common import make_app
    from bench.roulette_agents import run_agents
    from bench.roulette_floor import compare, run_floor
    from bench.roulette_load import flood_intake, paced_intake, redis_baseline
    from portal.redis_conn import redis_url as app_redis_url

    load_before = os.getloadavg()
    database_url, redis_url, created_pg = prepare_backends(args)
    app = make_app(database_url, redis_url)
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    redis_url = app_redis_url(app)
    db_kind = database_url.split(":", 1)[0].split("+")[0]
    redis_kind = "embedded" if redis_url.startswith("unix://") else redis_url
    print(
        f"roulette bench: {db_kind} + Redis {redis_kind}; {args.agents} agents; "
        f"steady {args.rate:g} leads/s for {args.seconds:g} s; offer timeout "
        f"{args.timeout} s; gunicorn {args.workers} workers x {args.threads} "
        f"threads + 1 worker; intake via {args.intake}; {os.cpu_count()} CPUs; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}",
        flush=True,
    )
    spawn = multiprocessing.get_context("spawn")
    floor_seconds = args.seconds if args.floor_seconds is None else args.floor_seconds
    floor = None
    if floor_seconds > 0:
        # Before the portal starts: nothing of it may run beside the floor.
        floor = run_floor(
            spawn,
            redis_url,
            args.agents,
            args.rate,
            floor_seconds,
            args.steady_threads,
            args.workers,
            args.threads,
            DEPARTMENT,
        )
        print(
            f"the floor ran {floor_seconds:g} s: {floor.created} of {floor.posted} "
            f"leads posted, {floor.connected} sockets",
            flush=True,
        )
    ids = seed(app, args.agents, args.timeout, args.rounds)
    server = start_portal(database_url, redis_url, args.workers, args.threads)
    children = []
    stop = spawn.Event()
    human_pace = spawn.Event()
    work = Path(tempfile.mkdtemp(prefix="roleta-roulette-out-"))
    try:
        target = {
            "base_url": server.url,
            "api_key": create_api_key(server.env) if args.intake == "api" else "",
            "database_url": database_url,
            "redis_url": redis_url,
            "instance": str(server.instance),
        }
        started = time.monotonic()
        logins = sign_in(server.url, ids, args.agents)
        print(
            f"signed in {len(logins)} agents over HTTP in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        messages = spawn.Queue()
        policy = Policy(
            accept_share=args.accept,
            think_min_s=args.think_min,
            think_max_s=args.think_max,
            flood_think_min_s=args.flood_think_min,
            flood_think_max_s=args.flood_think_max,
            ignore_every=args.ignore_every,
        )
        started = time.monotonic()
        agents_proc = run_child(
            spawn,
            run_agents,
            (
                server.url,
                logins,
                policy,
                messages,
                stop,
                str(work / "agents.json"),
                human_pace,
            ),
        )
        children.append(agents_proc)
        kind, connected, switched_on, errors = messages.get(timeout=300)
        # Let gunicorn close the idle keep-alive connections of the switching
        # (2 s), so that what is left per worker is the websockets.
        time.sleep(3)
        available, live = presence_counts(app)
        gunicorn_workers = sorted(process_tree([server.processes["web"].pid]))[1:]
        per_worker = sockets_per_process(server.port, gunicorn_workers)
        print(
            f"{connected} websockets connected, {switched_on} switched on in "
            f"{time.monotonic() - started:.1f} s (database: {available} available; "
            f"Redis: {live} live; websockets per gunicorn worker: "
            f"{' / '.join(map(str, per_worker))})"
            + (f"; errors: {errors}" if errors else ""),
            flush=True,
        )

        def web_pids() -> set[int]:
            return process_tree([server.processes["web"].pid])

        def worker_pids() -> set[int]:
            return process_tree([server.processes["worker"].pid])

        def client_pids() -> set[int]:
            return process_tree([c.pid for c in children if c.is_alive()])

        groups = {
            "gunicorn": web_pids,
            "worker": worker_pids,
            "bench clients": client_pids,
            # Shared with other users of the same Redis when it is not ours.
            "redis-server": lambda: pids_named("redis-server"),
        }
        if db_kind == "postgresql":
            groups["postgres (our database)"] = lambda: pg_backends(app)
        meter = CpuMeter(groups)
        idle_cpu = None
        if args.idle_seconds > 0:
            meter.start()
            time.sleep(args.idle_seconds)
            idle_cpu = meter.stop()
            idle_portal_s = (meter.seconds["gunicorn"], meter.seconds["worker"])
        watch = PendingWatch(app)
        watch.start()

        def start_line(count: int) -> tuple[StartLine, Callable[[], float]]:
            line = StartLine(spawn.Queue(), spawn.Event(), spawn.Value("d", 0.0))

            def go() -> float:
                for _ in range(count):
                    line.ready.get(timeout=300)
                line.at.value = time.time() + 0.5
                line.go.set()
                return line.at.value

            return line, go

        # Phase 1: steady intake, with the bare Redis baseline beside it.
        line, go = start_line(2)
        steady_proc = run_child(
            spawn,
            paced_intake,
            (
                args.intake,
                target,
                "s",
                args.rate,
                args.seconds,
                args.steady_threads,
                line,
                DEPARTMENT,
                str(work / "steady.json"),
            ),
        )
        baseline_proc = run_child(
            spawn,
            redis_baseline,
            (
                redis_url,
                args.rate,
                args.seconds,
                1500,
                line,
                str(work / "baseline.json"),
            ),
        )
        children += [steady_proc, baseline_proc]
        start_at = go()
        meter.start()
        profile(args.py_spy, server, work, "steady", args.seconds)
        steady_proc.join(timeout=args.seconds + 300)
        baseline_proc.join(timeout=60)
        steady_cpu = meter.stop()
        steady_portal_s = (meter.seconds["gunicorn"], meter.seconds["worker"])
        drained_s, states = wait_drained(app, args.timeout * 3 + 60)
        steady_window = (start_at - 1, time.time())
        print(
            f"steady phase done; queue drained {drained_s:.1f} s later "
            f"(lead states {states})",
            flush=True,
        )

        # Phase 2: intake as fast as the clients can post.
        line, go = start_line(args.flood_processes)
        flood_procs = [
            run_child(
                spawn,
                flood_intake,
                (
                    args.intake,
                    target,
                    f"f{n}",
                    args.flood_seconds,
                    args.flood_clients // args.flood_processes,
                    line,
                    DEPARTMENT,
                    str(work / f"flood{n}.json"),
                ),
            )
            for n in range(args.flood_processes)
        ]
        children += flood_procs
        human_pace.set()
        flood_at = go()
        meter.start()
        profile(args.py_spy, server, work, "flood", args.flood_seconds)
        for proc in flood_procs:
            proc.join(timeout=args.flood_seconds + 300)
        human_pace.clear()
        flood_cpu = meter.stop()
        flood_portal_s = (meter.seconds["gunicorn"], meter.seconds["worker"])
        flood_window = (flood_at - 1, time.time())
        drained_f, states_f = wait_drained(app, args.timeout * 3 + 300)
        print(
            f"flood phase done; queue drained {drained_f:.1f} s later "
            f"(lead states {states_f})",
            flush=True,
        )
        # Frames of the last decisions may still be on their way.
        time.sleep(2)
        watch.stopping.set()
        watch.join(timeout=10)
        stop.set()
        agents_proc.join(timeout=120)
        server.check_running()
        available_end, live_end = presence_counts(app)
    finally:
        stop.set()
        for child in children:
            if child.is_alive():
                child.terminate()
        server.stop()
    load_after = os.getloadavg()

    agents_out = load_json(work / "agents.json")
    steady = load_json(work / "steady.json")
    baseline = load_json(work / "baseline.json")
    flood = [
        r
        for n in range(args.flood_processes)
        for r in load_json(work / f"flood{n}.json")
    ]
    offers = load_offers(app)
    leads = load_leads(app)
    # Raw material for a closer look: every offer and lead beside the frames.
    (work / "offers.json").write_text(json.dumps(offers))
    (work / "leads.json").write_text(json.dumps(leads))
    problems = log_problems(server)

    print()
    print(f"results (raw records in {work}; server logs in {server.instance})")
    verdicts: list[tuple[str, bool]] = []
    if idle_cpu is not None:
        print(f"  idle ({args.agents} sockets open, no lead): {idle_cpu}")
        web_s, worker_s = idle_portal_s
        print(
            f"    idle CPU at the steady rate ({args.rate:g} leads/s), per lead: "
            f"gunicorn {web_s / args.idle_seconds / args.rate * 1000:.1f} ms + "
            f"worker {worker_s / args.idle_seconds / args.rate * 1000:.1f} ms"
        )
    print(f"  steady phase: {steady_cpu}")
    steady_ok = sum(1 for r in steady if r["status"] == 201)
    if steady_ok:
        web_s, worker_s = steady_portal_s
        print(
            f"  portal CPU per lead (steady; CPU time / leads, answers, pushes and "
            f"sweeps included): gunicorn {web_s / steady_ok * 1000:.0f} ms + "
            f"worker {worker_s / steady_ok * 1000:.0f} ms"
        )
    lines, latency_ok = report_latency(steady, agents_out["frames"], baseline)
    for line in lines:
        print(line)
    verdicts.append(("POST -> frame latency", latency_ok))
    if floor is not None:
        lines, floor_ok = compare(offer_latencies(steady, agents_out["frames"]), floor)
        for line in lines:
            print(line)
        verdicts.append(("POST -> frame against the floor", floor_ok))
    lines, expiry_ok = report_expiry(
        offers, agents_out["frames"], steady_window, "steady phase"
    )
    for line in lines:
        print(line)
    if expiry_ok is not None:
        verdicts.append(("expiry lateness", expiry_ok))
    lines, fair_ok = report_fairness(offers, sorted(ids.values()), steady_window)
    for line in lines:
        print(line)
    verdicts.append(("fairness", fair_ok))

    created = [r for r in flood if r["status"] == 201 and flood_at <= r["sent"]]
    in_time = [r for r in created if r["done"] <= flood_at + args.flood_seconds]
    rate = len(in_time) / args.flood_seconds
    post_times = [r["done"] - r["sent"] for r in created]
    flood_states = Counter(r["state"] for r in created)
    print(f"  flood phase: {flood_cpu}")
    if created:
        web_s, worker_s = flood_portal_s
        print(
            f"  portal CPU per lead (flood): gunicorn "
            f"{web_s / len(created) * 1000:.0f} ms + worker "
            f"{worker_s / len(created) * 1000:.0f} ms"
        )
    flood_end = flood_at + args.flood_seconds
    offered_in_flood = sum(
        1 for o in offers if flood_at <= (o["offered_at"] or 0) <= flood_end
    )
    answered_in_flood = sum(
        1 for a in agents_out["answers"] if flood_at <= a["sent"] <= flood_end
    )
    print(
        f"  intake throughput, roulette on, {args.agents} agents answering "
        f"(think {args.flood_think_min:g}-{args.flood_think_max:g} s), "
        f"{args.flood_clients} clients in {args.flood_processes} processes for "
        f"{args.flood_seconds:g} s: {rate:.0f} leads/s "
        f"{verdict(rate >= INTAKE_TARGET)} (target >= {INTAKE_TARGET}/s); "
        + (
            f"POST p50 {ms(pct(post_times, 50))}, p99 {ms(pct(post_times, 99))}; "
            if post_times
            else ""
        )
        + f"states at intake {dict(flood_states)}; "
        f"failed requests {sum(1 for r in flood if r['status'] != 201)}; "
        f"meanwhile the roulette placed {offered_in_flood / args.flood_seconds:.0f} "
        f"offers/s and agents answered {answered_in_flood / args.flood_seconds:.0f}/s"
    )
    verdicts.append(("intake throughput", rate >= INTAKE_TARGET))
    lines, _ = report_expiry(offers, agents_out["frames"], flood_window, "flood phase")
    for line in lines:
        print(line.replace("PASS", "(info)").replace("FAIL", "(info)"))

    checks = consistency(offers, leads, steady + flood, agents_out, watch)
    print(
        f"  lost or doubled: {len(leads)} leads, {len(offers)} offers "
        f"({dict(Counter(o['state'] for o in offers))}), "
        f"{len(agents_out['frames'])} offer frames, "
        f"{len(agents_out['answers'])} answers, "
        f"{len(agents_out['ignored'])} offers left to run out"
    )
    for label, count in checks:
        print(f"    {label}: {count} {verdict(count == 0)} (must be 0)")
    verdicts.append(("lost or doubled", all(count == 0 for _label, count in checks)))
    for key, whose in (("agent_id", "agent's"), ("lead_id", "lead's")):
        early = stamp_overlaps(offers, key)
        if early:
            print(
                f"    (info) {len(early)} offers stamped offered_at before the "
                f"{whose} previous offer was decided, by up to {ms(max(early))} "
                "(routing stamps `now` before its reads, places after them)"
            )
    answers = [a for a in agents_out["answers"] if a["status"] > 0]
    if answers:
        took = [a["done"] - a["sent"] for a in answers]
        lag = [a["sent"] - a["due"] for a in answers]
        too_late = sum(1 for a in answers if a["status"] == 409)
        print(
            f"  accept/decline POSTs: {len(answers)}, answered in p50 "
            f"{ms(pct(took, 50))}, p99 {ms(pct(took, 99))}; sent after the think "
            f"time by p99 {ms(pct(lag, 99))} (client-side delay); {too_late} "
            "answered 409 (the offer had run out before the answer was handled)"
        )
    print(
        f"  agents at the end: {available_end} available, {live_end} live; sockets "
        f"closed by the server {agents_out['closed_by_server']}; client errors "
        f"{len(agents_out['errors'])}"
        + (f" (first: {agents_out['errors'][:3]})" if agents_out["errors"] else "")
    )
    from portal.roulette.routing import MAX_ATTEMPTS

    print(
        f"  routings that gave up after {MAX_ATTEMPTS} collisions (lead left for "
        f"the sweep): {routing_give_ups(server)}"
    )
    print(f"  server log problems: {len(problems)}")
    for line in problems[:5]:
        print(f"    {line[:300]}")
    print(
        f"  load average after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}"
    )
    if created_pg and not args.keep:
        drop_pg()
    failing = [name for name, ok in verdicts if not ok]
    print(
        f"summary: {verdict(not failing)}"
        + (
            f" (failed: {', '.join(failing)})"
            if failing
            else f" ({len(verdicts)} checks)"
        )
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
