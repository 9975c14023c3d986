"""Load generators of bench/roulette.py, each run in a child process.

- `paced_intake`: leads at a fixed rate (open loop: request i leaves at
  start + i / rate whatever the earlier ones did, from a few threads, so a
  slow answer does not hide the delay of the requests behind it).
- `flood_intake`: leads as fast as N client threads can post them.
- `redis_baseline`: a bare Redis publish -> receive, publisher and
  subscriber on the same Redis as the portal, at the intake's rate.

Intake goes through `POST /api/v1/leads` with a bearer key (`Intake`), or,
with kind "direct", through the roulette service in-process (a contact and a
queued lead committed, then `route_lead`), for comparing against HTTP.
Each writes its records as JSON to `out_path`.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass

IDLE_RECONNECT_S = 1.0


@dataclass
class StartLine:
    """Children report ready, then all start at the time the parent sets:
    setting up (an app, a Redis subscription) takes a while under load."""

    ready: object  # multiprocessing Queue: each child puts its name
    go: object  # multiprocessing Event
    at: object  # multiprocessing Value("d"): the common start, epoch seconds

    def wait(self, name: str) -> float:
        self.ready.put(name)
        self.go.wait()
        return self.at.value


@dataclass
class Posted:
    """One lead POST: when it was due and sent, when it answered, and what."""

    seq: int
    due: float
    sent: float
    done: float
    status: int
    lead_id: int = 0
    state: str = ""
    error: str = ""


def lead_payload(tag: str, seq: int, department: str) -> dict:
    """A new customer each time: phone and email unique across the run (a
    repeated one would be a returning customer, routed to their owner)."""
    n = f"{seq:07d}"
    # One digit per load generator: "s" -> 1, "f0" -> 2, "f1" -> 3, ...
    digit = 1 if tag == "s" else 2 + int(tag[1:])
    return {
        "name": f"Bench Lead {tag} {n}",
        "phone": f"+55 11 9{digit}{n[:3]}-{n[3:]}",
        "email": f"lead-{tag}-{n}@bench.example",
        "department": department,
        "source": "bench",
        "message": "Interested in the 2-bedroom; please call after 6 pm.",
        "external_id": f"bench-{tag}-{n}",
    }


class HttpIntake:
    """POST /api/v1/leads over a keep-alive connection per thread."""

    def __init__(self, base_url: str, api_key: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.api_key = api_key
        self.local = threading.local()

    def post(self, payload: dict) -> tuple[int, dict]:
        conn = getattr(self.local, "conn", None)
        last = getattr(self.local, "last", 0.0)
        if conn is None or time.monotonic() - last > IDLE_RECONNECT_S:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.conn = conn
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
        }
        try:
            conn.request("POST", "/api/v1/leads", json.dumps(payload), headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        finally:
            self.local.last = time.monotonic()
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return response.status, data


class DirectIntake:
    """What the API does, in-process: contact + queued lead, then routing."""

    def __init__(self, database_url: str, redis_url: str, instance: str) -> None:
        from portal import create_app

        self.app = create_app(
            {
                "INSTANCE_PATH": instance,
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": redis_url,
            }
        )
        with self.app.app_context():
            from portal.extensions import db
            from portal.models import Account, Department

            account = db.session.scalars(db.select(Account)).first()
            self.account_id = account.id
            self.departments = {
                d.key: d.id
                for d in db.session.scalars(
                    db.select(Department).where(Department.account_id == account.id)
                )
            }
            db.session.remove()

    def post(self, payload: dict) -> tuple[int, dict]:
        from portal.extensions import db
        from portal.models import Contact, Lead
        from portal.roulette import routing

        with self.app.app_context():
            department_id = self.departments.get(payload.get("department"))
            contact = Contact(
                account_id=self.account_id,
                name=payload["name"],
                name_search=payload["name"].lower(),
                email=payload["email"],
                email_normalized=payload["email"].lower(),
                department_id=department_id,
                origin="web",
            )
            db.session.add(contact)
            db.session.flush()
            lead = Lead(
                account_id=self.account_id,
                contact_id=contact.id,
                origin="web",
                source=payload.get("source"),
                department_id=department_id,
                message=payload.get("message"),
                external_id=payload.get("external_id"),
                state="queued",
            )
            db.session.add(lead)
            db.session.commit()
            lead_id, contact_id = lead.id, contact.id
            placed = routing.route_lead(lead_id)
            state = "offered" if placed is not None else "queued"
            db.session.remove()
        return 201, {"id": lead_id, "contact_id": contact_id, "state": state}


def make_intake(kind: str, target: dict):
    if kind == "direct":
        return DirectIntake(
            target["database_url"], target["redis_url"], target["instance"]
        )
    return HttpIntake(target["base_url"], target["api_key"])


def _post_one(intake, tag: str, seq: int, due: float, department: str) -> Posted:
    sent = time.time()
    try:
        status, data = intake.post(lead_payload(tag, seq, department))
    except Exception as exc:  # a refused or reset connection is a finding
        return Posted(seq, due, sent, time.time(), -1, error=repr(exc))
    return Posted(
        seq,
        due,
        sent,
        time.time(),
        status,
        lead_id=int(data.get("id") or 0),
        state=str(data.get("state") or data.get("error") or ""),
    )


def paced_intake(
    kind: str,
    target: dict,
    tag: str,
    rate: float,
    seconds: float,
    threads: int,
    start: StartLine,
    department: str,
    out_path: str,
) -> None:
    """Post rate * seconds leads, lead i at the start + i / rate."""
    intake = make_intake(kind, target)
    start_at = start.wait(f"paced {tag}")
    total = int(rate * seconds)
    counter = itertools.count()
    lock = threading.Lock()
    records: list[Posted] = []

    def work() -> None:
        while True:
            with lock:
                seq = next(counter)
            if seq >= total:
                return
            due = start_at + seq / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            record = _post_one(intake, tag, seq, due, department)
            with lock:
                records.append(record)

    _run_threads(work, threads)
    _dump(records, out_path)


def flood_intake(
    kind: str,
    target: dict,
    tag: str,
    seconds: float,
    threads: int,
    start: StartLine,
    department: str,
    out_path: str,
) -> None:
    """Each thread posts leads back to back from the start for `seconds`."""
    intake = make_intake(kind, target)
    start_at = start.wait(f"flood {tag}")
    counter = itertools.count()
    lock = threading.Lock()
    records: list[Posted] = []
    end = start_at + seconds

    def work() -> None:
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        while time.time() < end:
            with lock:
                seq = next(counter)
            record = _post_one(intake, tag, seq, time.time(), department)
            with lock:
                records.append(record)

    _run_threads(work, threads)
    _dump(records, out_path)


def redis_baseline(
    redis_url: str,
    rate: float,
    seconds: float,
    payload_bytes: int,
    start: StartLine,
    out_path: str,
) -> None:
    """Publish a message of payload_bytes at `rate`; a subscriber on its own
    connection stamps each arrival. Writes [[sent, received], ...]."""
    import redis

    channel = "roleta:bench:baseline"
    publisher = redis.Redis.from_url(redis_url)
    subscriber = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(channel)
    subscriber.get_message(timeout=5, ignore_subscribe_messages=False)
    start_at = start.wait("baseline")
    total = int(rate * seconds)
    arrivals: list[tuple[float, float]] = []
    done = threading.Event()

    def listen() -> None:
        while len(arrivals) < total and not done.is_set():
            message = subscriber.get_message(timeout=1)
            if message is None or message["type"] != "message":
                continue
            received = time.time()
            sent = json.loads(message["data"])["t"]
            arrivals.append((sent, received))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    pad = "x" * payload_bytes
    for seq in range(total):
        delay = start_at + seq / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(channel, json.dumps({"u": seq, "t": time.time(), "p": pad}))
    listener.join(timeout=5)
    done.set()
    with open(out_path, "w") as fh:
        json.dump({"published": total, "arrivals": arrivals}, fh)


def _run_threads(work, threads: int) -> None:
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def _dump(records: list[Posted], out_path: str) -> None:
    with open(out_path, "w") as fh:
        json.dump([asdict(r) for r in records], fh)
