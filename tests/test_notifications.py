"""The notification center (CONTRACT: Working together): mentions notified
once by a job however often it runs, every notification standing on its
own, keyset pages newest first, marks that 404 on someone else's, and the
unread badge pushed over the websocket whenever the count changes."""

from __future__ import annotations

import json
import re
import threading

import pytest

from jobs.notifications import notify_assignment, notify_mentions
from portal.comments import service as comments
from portal.contacts.assignment import assign
from portal.extensions import db
from portal.models import Notification
from portal.models.base import utcnow
from portal.notifications import push, service
from portal.queue import enqueue
from portal.realtime.hub import channel_of
from portal.redis_conn import get_redis
from tests import factories

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class World:
    pass


@pytest.fixture
def world(ctx) -> World:
    w = World()
    w.admin = factories.make_user("admin", name="Ada Admin", password=None)
    w.manager = factories.make_user("manager", name="Mia Manager", units=["u1"])
    w.sam = factories.make_user("seller", name="Sam Seller", units=["u1"])
    w.sol = factories.make_user("seller", name="Sol Seller", units=["u2"])
    w.contact = factories.make_contact(w.admin, name="Ana <b>Souza</b>", owner=w.sam)
    return w


def notifications(user=None) -> list[Notification]:
    db.session.expire_all()
    query = db.select(Notification).order_by(Notification.id)
    if user is not None:
        query = query.where(Notification.user_id == user.id)
    return list(db.session.scalars(query))


def give(
    user, n: int = 1, kind: str = "assignment", data: dict | None = None
) -> list[Notification]:
    """`n` notifications for `user`, added as every feature adds them."""
    made = [
        Notification(
            account_id=user.account_id,
            user_id=user.id,
            kind=kind,
            data=data or {"contact_name": f"Contact {i}", "by": "Ada"},
            url="/contacts",
        )
        for i in range(n)
    ]
    db.session.add_all(made)
    db.session.commit()
    return made


class Frames:
    """What the websocket fan-out publishes, as the hub would hear it."""

    def __init__(self) -> None:
        redis = get_redis()
        self.listener = redis.pubsub(ignore_subscribe_messages=True)
        self.listener.subscribe(channel_of(redis))
        self.listener.get_message(timeout=1, ignore_subscribe_messages=False)

    def read(self, user_id: int) -> list[str]:
        """The user's notification frames (the home page's refresh signals,
        tested in test_home.py, left out)."""
        frames = []
        while (message := self.listener.get_message(timeout=0.5)) is not None:
            frame = json.loads(message["data"])
            if frame.get("u") == user_id and 'id="home-' not in frame["t"]:
                frames.append(frame["t"])
        return frames

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def frames(ctx):
    listening = Frames()
    yield listening
    listening.close()


def badge_counts(frames: list[str]) -> list[int]:
    return [
        int(m)
        for frame in frames
        for m in re.findall(r'id="unread-count"[^>]*data-unread="(\d+)"', frame)
    ]


# ------------------------------------------------------------- mentions


def test_a_mention_job_run_twice_notifies_once(world, run_jobs):
    entry = comments.add_comment(
        world.manager, world.contact.id, "Call her", [world.sam.id, world.admin.id]
    )
    run_jobs()
    first = notifications()
    assert sorted(n.user_id for n in first) == sorted([world.sam.id, world.admin.id])
    assert notify_mentions(entry.id) == []  # again, directly
    enqueue("jobs.notifications.notify_mentions", entry.id)
    run_jobs()
    assert [n.id for n in notifications()] == [n.id for n in first]


def test_a_mention_is_not_sent_to_its_author_nor_to_who_lost_sight(world):
    entry = comments.add_comment(
        world.manager, world.contact.id, "Note", [world.manager.id, world.sam.id]
    )
    # Sam moves to another unit's contacts before the job runs: not his now.
    world.contact.owner_id = world.sol.id
    db.session.commit()
    assert notify_mentions(entry.id) == []
    assert notifications() == []


def test_each_mention_stands_on_its_own(world, run_jobs):
    for text in ("first", "second"):
        comments.add_comment(world.manager, world.contact.id, text, [world.sam.id])
    run_jobs()
    mine = notifications(world.sam)
    assert [n.data["excerpt"] for n in mine] == ["first", "second"]
    assert all(n.read_at is None for n in mine)
    assert service.unread_count(world.sam.id) == 2


def test_the_mention_push_is_escaped_and_carries_the_badge(world, frames):
    entry = comments.add_comment(
        world.manager, world.contact.id, f"Look {SCRIPT}", [world.sam.id]
    )
    (made,) = notify_mentions(entry.id)
    pushed = frames.read(world.sam.id)
    assert badge_counts(pushed) == [1]
    (toast,) = [f for f in pushed if "data-notification-id" in f]
    assert f'data-notification-id="{made}"' in toast
    assert ESCAPED in toast
    assert "&lt;b&gt;Souza&lt;/b&gt;" in toast
    assert "<script" not in toast and "<b>" not in toast
    assert 'hx-swap-oob="afterbegin"' in toast


def test_the_push_is_in_the_recipients_language(world, frames):
    world.sam.language = "pt_BR"
    db.session.commit()
    (waiting,) = give(
        world.sam, kind="lead_waiting", data={"contact_name": "Ana", "minutes": 5}
    )
    push.toast(waiting)
    badge, toast = frames.read(world.sam.id)
    assert 'data-unread="1"' in badge
    assert "<bdi>Ana</bdi>" in toast and "has waited" not in toast


# --------------------------------------------------------- the badge


def test_any_notification_written_pushes_the_badge(world, frames):
    # As portal/background/runs.py writes a job's end: no call to push.
    give(world.sam, kind="job", data={"job_id": 7, "kind": "import", "status": "done"})
    give(world.sam, 2)
    assert badge_counts(frames.read(world.sam.id)) == [1, 3]
    assert frames.read(world.sol.id) == []


def test_marking_read_pushes_the_lower_count(world, client, auth, frames):
    first, _second = give(world.sam, 2)
    frames.read(world.sam.id)
    auth.login(world.sam)
    answer = client.hx_post(f"/notifications/{first.id}/read")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "<html" not in html
    assert f'id="notification-{first.id}"' in html and 'data-read="true"' in html
    assert badge_counts([html]) == [1]
    assert badge_counts(frames.read(world.sam.id)) == [1]
    # Again: no change, no push.
    assert client.hx_post(f"/notifications/{first.id}/read").status_code == 200
    assert frames.read(world.sam.id) == []
    answer = client.hx_post("/notifications/read-all")
    assert badge_counts([answer.get_data(as_text=True)]) == [0]
    assert badge_counts(frames.read(world.sam.id)) == [0]
    assert service.unread_count(world.sam.id) == 0


def test_the_top_bar_and_the_title_show_the_unread_count(world, client, auth):
    auth.login(world.sam)
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'id="unread-count"[^>]*data-unread="0"[^>]*hidden', page)
    assert "<title>Home · Roleta</title>" in page
    give(world.sam, 3)
    page = client.get("/").get_data(as_text=True)
    assert 'data-unread="3"' in page
    assert "<title>(3) Home · Roleta</title>" in page


# ------------------------------------------------------------ the list


def test_the_list_pages_newest_first_by_keyset(world, client, auth):
    made = give(world.sam, 45)
    give(world.sol, 3)  # someone else's never show
    auth.login(world.sam)
    seen: list[int] = []
    html = client.get("/notifications").get_data(as_text=True)
    assert "<html" in html
    for _page in range(3):
        ids = [int(i) for i in re.findall(r'<li id="notification-(\d+)"', html)]
        seen += ids
        older = re.search(r'href="/notifications\?before=(\d+)"', html)
        if older is None:
            break
        html = client.hx_get(f"/notifications?before={older.group(1)}").get_data(
            as_text=True
        )
        assert "<html" not in html
    assert seen == sorted((n.id for n in made), reverse=True)
    assert [len(seen[:20]), len(seen[20:40]), len(seen[40:])] == [20, 20, 5]


def test_each_kind_reads_as_what_it_tells(world, client, auth):
    give(world.sam, kind="job", data={"job_id": 1, "kind": "export", "status": "done"})
    for status in ("done", "failed", "cancelled"):
        give(
            world.sam,
            kind="job",
            data={"job_id": 2, "kind": "import", "status": status},
        )
    give(world.sam, kind="import", data={"count": 3, "by": "Ada", "import_id": 1})
    give(world.sam, kind="lead_waiting", data={"contact_name": SCRIPT, "minutes": 10})
    give(world.sam, kind="something_new", data={"x": 1})
    entry = comments.add_comment(
        world.manager, world.contact.id, f"Hi {SCRIPT}", [world.sam.id]
    )
    notify_mentions(entry.id)
    auth.login(world.sam)
    html = client.get("/notifications").get_data(as_text=True)
    for text in (
        "Your import finished.",
        "Your import failed.",
        "Your import was cancelled.",
        "Your background job finished.",
        "<bdi>Ada</bdi>'s import gave you 3 contacts.",
        "has waited more than 10 minutes",
        "New notification",
        "<bdi>Mia Manager</bdi> mentioned you on "
        "<bdi>Ana &lt;b&gt;Souza&lt;/b&gt;</bdi>",
        f'href="/contacts/{world.contact.id}#entry-{entry.id}"',
    ):
        assert text in html, text
    assert "<script" not in html.split("</head>")[1].split("<script src")[0]


def test_someone_elses_notification_answers_404(world, client, auth):
    (theirs,) = give(world.sol)
    auth.login(world.sam)
    for url in (f"/notifications/{theirs.id}/read", "/notifications/999999/read"):
        assert client.hx_post(url).status_code == 404
        assert client.post(url).status_code == 404
    client.post("/notifications/read-all")
    assert notifications(world.sol)[0].read_at is None


def test_without_htmx_the_marks_redirect_back(world, client, auth):
    (mine,) = give(world.sam)
    auth.login(world.sam)
    answer = client.post(f"/notifications/{mine.id}/read")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/notifications")
    assert notifications(world.sam)[0].read_at is not None
    assert client.post("/notifications/read-all").status_code == 303


def test_marks_need_the_csrf_token(world, client, auth):
    (mine,) = give(world.sam)
    auth.login(world.sam)
    assert client.post(f"/notifications/{mine.id}/read", csrf=False).status_code == 400
    assert client.post("/notifications/read-all", csrf=False).status_code == 400
    assert notifications(world.sam)[0].read_at is None


def test_the_list_needs_a_sign_in(client):
    assert client.get("/notifications").status_code == 302


def test_a_link_to_a_contact_no_longer_visible_answers_404(world, client, auth):
    entry = comments.add_comment(world.manager, world.contact.id, "Hi", [world.sam.id])
    (made,) = notify_mentions(entry.id)
    world.contact.owner_id = world.sol.id
    world.contact.updated_at = utcnow()
    db.session.commit()
    auth.login(world.sam)
    url = db.session.get(Notification, made).url
    assert client.get(url.split("#")[0]).status_code == 404


def test_the_badge_is_read_again_on_its_own(world, client, auth):
    # What the top bar asks when its socket (re)connects.
    give(world.sam, 2)
    auth.login(world.sam)
    html = client.hx_get("/notifications/badge").get_data(as_text=True)
    assert "<html" not in html
    assert badge_counts([html]) == [2]
    assert "hx-swap-oob" not in html
    page = client.get("/").get_data(as_text=True)
    assert 'hx-trigger="htmx:ws:after:connection from:#live"' in page


def test_an_assignment_pops_up_once_with_the_badge(world, frames, run_jobs):
    other = factories.make_contact(world.admin, name="Caio <i>C</i>", unassigned=True)
    assign(world.manager, other.id, world.sam.id)
    run_jobs()
    pushed = frames.read(world.sam.id)
    assert badge_counts(pushed) == [1]
    (toast,) = [f for f in pushed if "data-notification-id" in f]
    said = "<bdi>Mia Manager</bdi> gave you <bdi>Caio &lt;i&gt;C&lt;/i&gt;</bdi>."
    assert said in toast
    (made,) = notifications(world.sam)
    log_id = made.dedupe_key.split(":")[1]
    assert notify_assignment(int(log_id)) == made.id  # again: no new row
    assert frames.read(world.sam.id) == []  # nor a pop-up


def test_two_runs_at_once_notify_once(app, world):
    entries = [
        comments.add_comment(
            world.manager,
            world.contact.id,
            f"Round {n}",
            [world.sam.id, world.admin.id],
        ).id
        for n in range(5)
    ]
    db.session.remove()  # no transaction of the test in the runs' way
    for entry_id in entries:
        barrier = threading.Barrier(2)
        made: list[int] = []

        def run(entry_id: int = entry_id, barrier=barrier, made=made) -> None:
            with app.app_context():
                barrier.wait()
                made.extend(notify_mentions(entry_id))
                db.session.remove()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(made) == 2, entry_id  # one per person, from either run
    rows = notifications()
    assert len(rows) == 10
    assert len({row.dedupe_key for row in rows}) == 10
