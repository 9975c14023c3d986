"""Reading and marking a user's notifications, and making the mentions'.

Every notification stands on its own: one row per event and person, never
merged into or replaced by a later one. A job makes them after the commit
of what they tell about; the row's dedupe key (the event and the person)
makes a job that runs twice notify once.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import has_request_context, request
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.comments.service import sees_contact
from portal.comments.text import excerpt
from portal.errors import NotFound
from portal.extensions import db
from portal.ids import parse_id
from portal.models import Contact, HistoryEntry, Notification, User
from portal.models.base import utcnow
from portal.notifications import push

PAGE_SIZE = 20


def unread_count(user_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )


_CACHE = "roleta.unread_count"  # a key of the request's WSGI environ


def current_unread(user: User) -> int:
    """The signed-in user's unread count, read once per request (the top
    bar's badge and the tab title both show it)."""
    if _CACHE not in request.environ:
        request.environ[_CACHE] = unread_count(user.id)
    return request.environ[_CACHE]


def _forget_count() -> None:
    if has_request_context():
        request.environ.pop(_CACHE, None)


@dataclass
class NotificationPage:
    items: list[Notification]
    # Pass as `before` for the next, older page; None on the last one.
    next_before: int | None


def page(
    user: User, before: int | None = None, limit: int = PAGE_SIZE
) -> NotificationPage:
    """The user's notifications, newest first, older than `before` (an id)."""
    query = (
        select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Notification.id < before)
    items = list(db.session.scalars(query))
    more = len(items) > limit
    items = items[:limit]
    return NotificationPage(items, items[-1].id if more and items else None)


def _own(user: User, notification_id: int | str) -> Notification:
    found_id = parse_id(notification_id)
    found = (
        db.session.scalar(
            select(Notification).where(
                Notification.id == found_id, Notification.user_id == user.id
            )
        )
        if found_id is not None
        else None
    )
    if found is None:
        raise NotFound()
    return found


def mark_read(user: User, notification_id: int | str) -> Notification:
    """Mark one of the user's notifications read (again is no change).
    Raises NotFound for anyone else's, as for one that does not exist."""
    found = _own(user, notification_id)
    if found.read_at is None:
        found.read_at = utcnow()
        db.session.commit()
        _forget_count()
    return found


def mark_all_read(user: User) -> int:
    """Mark every unread notification of the user read; returns how many.
    The badge is pushed explicitly: a bulk UPDATE is not seen by push's
    session hook."""
    changed = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    _forget_count()
    if changed:
        push.badges([user.id])
    return changed


def add_once(notification: Notification) -> Notification | None:
    """Add and commit a notification unless one with its dedupe key exists
    (a job run twice, or twice at once, tells once); the new row, or None."""
    key = notification.dedupe_key
    if key and db.session.scalar(
        select(Notification.id).where(Notification.dedupe_key == key)
    ):
        return None
    db.session.add(notification)
    try:
        db.session.commit()
    except IntegrityError:  # the same event's other run wrote it meanwhile
        db.session.rollback()
        return None
    return notification


# ------------------------------------------------------------ mentions


def mention_key(entry_id: int, user_id: int) -> str:
    return f"mention:{entry_id}:{user_id}"


def notify_mentions(entry_id: int) -> list[int]:
    """Notify each person a comment mentions who still sees the contact
    (not its author); returns the ids of the notifications this run made.
    Safe to run twice, and twice at once: the dedupe key lets one row per
    person stand."""
    entry = db.session.get(HistoryEntry, entry_id)
    if entry is None or entry.kind != "comment":
        return []
    contact = db.session.get(Contact, entry.contact_id)
    author = db.session.get(User, entry.author_id) if entry.author_id else None
    wanted = {
        int(person["id"])
        for person in (entry.data or {}).get("mentions", [])
        if person.get("id") is not None and person.get("id") != entry.author_id
    }
    if contact is None or not wanted:
        return []
    for _attempt in range(3):
        try:
            made = _insert_mentions(entry, contact, author, wanted)
            db.session.commit()
        except IntegrityError:
            # Another run wrote some of them between our read and our
            # insert: read again, and add only what is still missing.
            db.session.rollback()
            continue
        for notification in made:
            push.toast(notification)
        return [notification.id for notification in made]
    return []


def _insert_mentions(
    entry: HistoryEntry, contact: Contact, author: User | None, wanted: set[int]
) -> list[Notification]:
    keys = {user_id: mention_key(entry.id, user_id) for user_id in wanted}
    existing = set(
        db.session.scalars(
            select(Notification.dedupe_key).where(
                Notification.dedupe_key.in_(keys.values())
            )
        )
    )
    made = []
    for user in db.session.scalars(select(User).where(User.id.in_(wanted))):
        if keys[user.id] in existing or not sees_contact(user, contact.id):
            # Someone who lost sight of the contact since is not told of it.
            continue
        notification = Notification(
            account_id=entry.account_id,
            user_id=user.id,
            kind="mention",
            data={
                "contact_id": contact.id,
                "contact_name": contact.name,
                "entry_id": entry.id,
                "by": author.name if author else None,
                "excerpt": excerpt(entry.body),
            },
            url=f"/contacts/{contact.id}#entry-{entry.id}",
            dedupe_key=keys[user.id],
        )
        db.session.add(notification)
        made.append(notification)
    return made
