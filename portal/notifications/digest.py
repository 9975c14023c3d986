"""Mail digests of what a person missed (PRODUCT §5, issue 13).

A notification still unread OFFLINE_MINUTES after it was made, for someone
with no live connection now, is mailed: all such of theirs in one digest, at
most one digest every EVERY_MINUTES, none for who opted out. Each new
notification schedules its person's digest job (at most one waits per
person); the job mails what is due and schedules itself again for what will
be. "Offline" is read from portal.realtime.presence when the job runs: its
marks last only a short grace period, so a connection that came and went
within the ten minutes is not seen.

The job is safe to run twice, and twice at once: a digest first claims its
notifications (a guarded UPDATE of `mailed_up_to`), then mails them; a
failed delivery hands the claim back for RQ's retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from flask import current_app
from flask_babel import force_locale, ngettext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal import mail
from portal.extensions import db
from portal.models import Notification, User
from portal.models.base import utcnow
from portal.notifications.models import NotificationMail
from portal.queue import enqueue_at
from portal.realtime import presence
from portal.redis_conn import get_redis

log = logging.getLogger(__name__)

OFFLINE_MINUTES = 10
EVERY_MINUTES = 15
MAX_ITEMS = 50  # per mail; the rest follow in the next digest
JOB = "jobs.notifications.mail_digest"
TEMPLATE = "notifications/digest.txt"


def _pending_key(user_id: int) -> str:
    return f"roleta:digest:pending:{user_id}"


def schedule(user_ids: Iterable[int], at: datetime | None = None) -> None:
    """Have each user's digest job run at `at` (default: OFFLINE_MINUTES
    from now), unless one is already waiting for them."""
    when = at or utcnow() + timedelta(minutes=OFFLINE_MINUTES, seconds=5)
    wait = max(1, int((when - utcnow()).total_seconds()))
    try:
        client = get_redis()
        for user_id in set(user_ids):
            # The mark lapses as the job runs: a later notification then
            # schedules the next one (the job finds nothing twice over).
            if client.set(_pending_key(user_id), 1, nx=True, ex=wait):
                enqueue_at(when, JOB, user_id)
    except redis.RedisError:
        log.warning("could not schedule the mail digest of users %s", user_ids)


def setting_of(user: User) -> NotificationMail:
    """The user's digest row, made (and committed) on first use."""
    found = db.session.get(NotificationMail, user.id)
    if found is not None:
        return found
    db.session.add(NotificationMail(user_id=user.id, opted_out=False, mailed_up_to=0))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # made meanwhile by another run
    return db.session.get(NotificationMail, user.id)


def set_opted_out(user: User, opted_out: bool) -> NotificationMail:
    setting = setting_of(user)
    setting.opted_out = opted_out
    db.session.commit()
    return setting


def _later(user_id: int, at: datetime) -> None:
    get_redis().delete(_pending_key(user_id))
    schedule([user_id], at)


def send_digest(user_id: int) -> str | None:
    """Mail the user what they missed, if it is due; returns where the mail
    went (None: nothing to send now, or not to them)."""
    get_redis().delete(_pending_key(user_id))
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    setting = setting_of(user)
    if setting.opted_out:
        return None
    now = utcnow()
    if presence.is_live(user.account_id, user.id):
        # They are here and see the badge; look again once they may be gone.
        _later(user.id, now + timedelta(minutes=OFFLINE_MINUTES))
        return None
    if setting.last_sent_at and now - setting.last_sent_at < timedelta(
        minutes=EVERY_MINUTES
    ):
        _later(user.id, setting.last_sent_at + timedelta(minutes=EVERY_MINUTES))
        return None
    cutoff = now - timedelta(minutes=OFFLINE_MINUTES)
    unmailed = select(Notification).where(
        Notification.user_id == user.id,
        Notification.read_at.is_(None),
        Notification.id > setting.mailed_up_to,
    )
    due = list(
        db.session.scalars(
            unmailed.where(Notification.created_at <= cutoff)
            .order_by(Notification.id)
            .limit(MAX_ITEMS)
        )
    )
    newer = db.session.scalar(
        select(Notification.created_at)
        .where(
            Notification.user_id == user.id,
            Notification.read_at.is_(None),
            Notification.id > (due[-1].id if due else setting.mailed_up_to),
        )
        .order_by(Notification.id)
        .limit(1)
    )
    if not due:
        db.session.commit()
        if newer is not None:
            _later(user.id, newer + timedelta(minutes=OFFLINE_MINUTES, seconds=5))
        return None
    claimed_from = setting.mailed_up_to
    claimed = db.session.execute(
        update(NotificationMail)
        .where(
            NotificationMail.user_id == user.id,
            NotificationMail.mailed_up_to == claimed_from,
        )
        .values(mailed_up_to=due[-1].id, last_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        return None  # another run mails these
    try:
        sent = _mail(user, due)
    except Exception:
        db.session.execute(
            update(NotificationMail)
            .where(
                NotificationMail.user_id == user.id,
                NotificationMail.mailed_up_to == due[-1].id,
            )
            .values(mailed_up_to=claimed_from, last_sent_at=setting.last_sent_at)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        raise
    if newer is not None:
        _later(user.id, now + timedelta(minutes=EVERY_MINUTES))
    return sent


def _mail(user: User, due: list[Notification]) -> str:
    base = (current_app.config.get("PUBLIC_URL") or "http://localhost").rstrip("/")
    template = current_app.jinja_env.get_or_select_template(TEMPLATE)
    with force_locale(user.language or "en"):
        subject = ngettext(
            "%(num)d notification you missed on Roleta",
            "%(num)d notifications you missed on Roleta",
            len(due),
        )
        body = template.render(
            user=user, notifications=due, base=base, list_url=f"{base}/notifications"
        )
    return mail.send(user.email, subject, body)
