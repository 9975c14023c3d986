"""The live side of notifications: every open tab's unread badge follows
the database, and a new mention pops up in the top bar.

Whoever writes a notification (a job of any kind, in any process) adds it
through the ORM session; `install` hooks that session so that after each
commit that added or changed notifications, each user concerned gets their
badge pushed again with the count the database now holds, and each who
got a new one their mail digest scheduled (digest.py). Bulk UPDATEs
(mark all read) call `badges` themselves. Fragments come from the
notifications templates, rendered in the recipient's language with no
request at hand, and go out through portal.realtime.hub.publish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
from blinker import Namespace
from flask import Flask, current_app, has_app_context
from flask_babel import force_locale
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import Notification, User
from portal.notifications import digest
from portal.realtime.hub import publish

log = logging.getLogger(__name__)

BADGE = "notifications/_badge.html"
TOAST = "notifications/_toast.html"
# Keys of Session.info: whose notifications a transaction wrote or changed,
# and who got new ones.
_CHANGED = "roleta.notification_users"
_NEW = "roleta.notified_users"

# Sent after each commit that added or changed notifications, with the ids
# of the people concerned (the home page's mentions block listens).
notifications_changed = Namespace().signal("notifications-changed")


def render_in(language: str | None, template_name: str, **context: Any) -> str:
    """A template in `language`, with only its own names and `context`: a
    job has no request for the context processors to read."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    template = app.jinja_env.get_or_select_template(template_name)
    with force_locale(language or "en"):
        return template.render({"pushed": True, **context})


def badge_html(unread: int, language: str | None) -> str:
    return render_in(language, BADGE, unread=unread)


def badges(user_ids: Iterable[int]) -> None:
    """Push each user's badge with their unread count as committed.

    Reads on a connection of its own: it also runs from the session's
    after-commit hook, when the session itself may not query.
    """
    wanted = sorted(set(user_ids))
    if not wanted:
        return
    unread = func.count(Notification.id).filter(Notification.read_at.is_(None))
    statement = (
        select(User.id, User.language, unread)
        .outerjoin(Notification, Notification.user_id == User.id)
        .where(User.id.in_(wanted))
        .group_by(User.id, User.language)
    )
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(statement).all()
        for user_id, language, count in rows:
            publish(user_id, badge_html(count or 0, language))
    except (redis.RedisError, SQLAlchemyError):
        # The badge is a courtesy: the next change or page load corrects it;
        # what was committed stands.
        log.warning("could not push the unread badge to users %s", wanted)


def toast(notification: Notification) -> None:
    """Pop a new notification up in its user's top bar (after the commit)."""
    user = db.session.get(User, notification.user_id)
    if user is None:
        return
    try:
        publish(user.id, render_in(user.language, TOAST, notification=notification))
    except redis.RedisError:
        log.warning("could not push notification %s", notification.id)


# ------------------------------------------------- the session's hooks


def _note_changes(session: Session, _flush_context: object) -> None:
    touched = session.info.setdefault(_CHANGED, set())
    notified = session.info.setdefault(_NEW, set())
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, Notification) and instance.user_id is not None:
            touched.add(instance.user_id)
            if instance in session.new:
                notified.add(instance.user_id)


def _push_after_commit(session: Session) -> None:
    touched = session.info.pop(_CHANGED, None)
    notified = session.info.pop(_NEW, None)
    if not has_app_context():
        return
    if touched:
        badges(touched)
        notifications_changed.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user_ids=touched,
        )
    if notified:
        # Whoever does not read it in time may get it by mail.
        digest.schedule(notified)


def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)
    session.info.pop(_NEW, None)


def install() -> None:
    """Hook the app's session (once per process, whatever the apps)."""
    for name, listener in (
        ("after_flush", _note_changes),
        ("after_commit", _push_after_commit),
        ("after_rollback", _forget),
    ):
        if not event.contains(db.session, name, listener):
            event.listen(db.session, name, listener)
