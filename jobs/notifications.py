"""Notification jobs: each writes at most one row per event."""

from __future__ import annotations

from jobs import app_context


def notify_assignment(log_id: int) -> int | None:
    """Tell the new owner about an assignment; returns the notification id."""
    with app_context():
        from portal.extensions import db
        from portal.models import AssignmentLog, Contact, Notification, User
        from portal.notifications import push
        from portal.notifications.service import add_once

        log = db.session.get(AssignmentLog, log_id)
        if log is None or log.to_user_id is None:
            return None
        dedupe = f"assignment:{log.id}"
        contact = db.session.get(Contact, log.contact_id)
        by = db.session.get(User, log.by_user_id) if log.by_user_id else None
        made = add_once(
            Notification(
                account_id=log.account_id,
                user_id=log.to_user_id,
                kind="assignment",
                data={
                    "contact_id": log.contact_id,
                    "contact_name": contact.name if contact else None,
                    "by": by.name if by else None,
                    "how": log.how,
                },
                url=f"/contacts/{log.contact_id}",
                dedupe_key=dedupe,
            )
        )
        if made is None:  # an earlier run's row stands
            return db.session.scalar(
                db.select(Notification.id).where(Notification.dedupe_key == dedupe)
            )
        # The badge follows by itself (portal.notifications.push); the
        # pop-up only for the run that made the row.
        push.toast(made)
        return made.id


def notify_mentions(entry_id: int) -> list[int]:
    """Tell each person a comment mentions; returns the notifications made
    by this run (none when an earlier run made them)."""
    with app_context():
        from portal.notifications.service import notify_mentions as notify

        return notify(entry_id)


def mail_digest(user_id: int) -> str | None:
    """Mail the user what they missed, when due; schedules itself again for
    what will be."""
    with app_context():
        from portal.notifications.digest import send_digest

        return send_digest(user_id)
