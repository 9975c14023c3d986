"""The clock and safety net every worker runs: nothing is lost when a job or
push is.

The promise: an offer past its deadline is expired (`expire_overdue`, every
half second: the one expiry clock, no job is scheduled per offer); waiting
leads are offered to free agents when no router runs; managers hear once
about a lead that waited too long while its department was open; and stale
presence marks are forgotten (`sweep_queue`, every five seconds). Each
step is safe to run twice and in several workers at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.sql.selectable import Select

from portal.extensions import db
from portal.models import (
    Account,
    Contact,
    Lead,
    LeadState,
    Notification,
    Offer,
    OfferState,
    RolePermission,
    User,
    UserStatus,
)
from portal.models.base import utcnow
from portal.models.org import department_member
from portal.org import hours
from portal.realtime import presence
from portal.roulette import lease, push
from portal.roulette.decisions import expire_offer
from portal.roulette.pool import department_hours
from portal.roulette.routing import dispatch


def expire_overdue(now: datetime | None = None, limit: int = 200) -> int:
    """Expire every pending offer past its deadline; returns how many."""
    now = now or utcnow()
    overdue = list(
        db.session.scalars(
            select(Offer.id)
            .where(Offer.state == OfferState.PENDING, Offer.expires_at <= now)
            .order_by(Offer.expires_at)
            .limit(limit)
        )
    )
    db.session.rollback()
    return sum(1 for offer_id in overdue if expire_offer(offer_id, now))


def alert_long_waits(account: Account, now: datetime | None = None) -> int:
    """Tell the department's managers about leads waiting too long.

    Only the time a department is open counts: a lead that came in at night
    alerts nobody at night, nor the moment the department opens (when its
    agents are switching on), but once the department has been open for the
    whole threshold and the lead still waits.
    """
    now = now or utcnow()
    minutes = account.roulette_queue_alert_minutes
    threshold = now - timedelta(minutes=minutes)
    quiet = _not_open_throughout(account.id, now, minutes)
    waiting = list(
        db.session.scalars(
            select(Lead)
            .where(
                Lead.account_id == account.id,
                Lead.state == LeadState.QUEUED,
                Lead.alerted_at.is_(None),
                Lead.created_at <= threshold,
                or_(Lead.department_id.is_(None), Lead.department_id.not_in(quiet)),
            )
            .order_by(Lead.id)
            .limit(100)
        )
    )
    sent = 0
    for lead in waiting:
        claimed = db.session.execute(
            update(Lead)
            .where(Lead.id == lead.id, Lead.alerted_at.is_(None))
            .values(alerted_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            db.session.rollback()
            continue
        notifications = _notify_managers(account, lead, now)
        db.session.commit()
        for notification_id, user_id in notifications:
            push.notification(notification_id, user_id)
        sent += 1
    return sent


def _not_open_throughout(account_id: int, now: datetime, minutes: int) -> list[int]:
    """Departments closed at some moment of the last `minutes`."""
    return [
        dept
        for dept, working_hours, timezone in department_hours(account_id)
        if not hours.open_throughout(working_hours, timezone, now, minutes)
    ]


def _holders(account: Account, permission: str) -> Select:
    """Active users of the account whose role grants `permission`."""
    return (
        select(User.id)
        .join(RolePermission, RolePermission.role_id == User.role_id)
        .where(
            User.account_id == account.id,
            User.status == UserStatus.ACTIVE,
            RolePermission.permission == permission,
        )
    )


def _managers_of(account: Account, lead: Lead) -> list[int]:
    """Who hands out the lead's department's contacts; else the admins."""
    if lead.department_id is not None:
        in_department = list(
            db.session.scalars(
                _holders(account, "contacts.assign").where(
                    User.id.in_(
                        select(department_member.c.user_id).where(
                            department_member.c.department_id == lead.department_id
                        )
                    )
                )
            )
        )
        if in_department:
            return in_department
    return list(db.session.scalars(_holders(account, "users.manage")))


def _notify_managers(
    account: Account, lead: Lead, now: datetime
) -> list[tuple[int, int]]:
    contact = db.session.get(Contact, lead.contact_id)
    made = []
    for user_id in _managers_of(account, lead):
        notification = Notification(
            account_id=account.id,
            user_id=user_id,
            kind="lead_waiting",
            data={
                "lead_id": lead.id,
                "contact_id": lead.contact_id,
                "contact_name": contact.name if contact else None,
                "minutes": account.roulette_queue_alert_minutes,
            },
            url=f"/contacts/{lead.contact_id}",
            dedupe_key=f"lead-waiting:{lead.id}:{user_id}",
            created_at=now,
        )
        db.session.add(notification)
        db.session.flush()
        made.append((notification.id, user_id))
    return made


def sweep_queue() -> dict[str, int]:
    """The slower half of the safety net: offer waiting leads, alert managers
    about long waits, forget stale presence marks."""
    figures = {"dispatched": 0, "alerted": 0}
    # The router routes the queue on its own; without it, the sweep does.
    routed = lease.running()
    for account in db.session.scalars(
        select(Account).where(Account.roulette_enabled.is_(True))
    ).all():
        if not routed:
            figures["dispatched"] += dispatch(account)
        figures["alerted"] += alert_long_waits(account)
        presence.prune(account.id)
    db.session.rollback()
    return figures


def sweep(full: bool = True) -> dict[str, int]:
    """The safety net (the worker runs the expiry every half second and the
    rest every five): expire overdue offers; with `full`, also `sweep_queue`."""
    figures = {"expired": expire_overdue()}
    if full:
        figures.update(sweep_queue())
    return figures
