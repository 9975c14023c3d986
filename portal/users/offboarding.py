"""Deleting a user without losing a thing: who gets their contacts and open
tasks (one person, or round-robin across a team), and the background job
that moves them, batch by batch, safe to run again after any kill.

The user is out at once (status deleted, sessions ended, offline, so no
lead is offered to them again); their row stays, so the history and the
assignment log keep naming them. Each contact moves through
contacts.ownership.hand_over (how "reassignment"), the one rule for an owner
change. Round-robin is by the count moved so far, so a resumed run deals
the next contact to the same heir an uninterrupted run would have.
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from portal.auth import service as auth
from portal.background import runs
from portal.background.kinds import Kind
from portal.background.lease import Lease
from portal.contacts.ownership import OwnerChange, announce, hand_over
from portal.contacts.scope import may_own
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import (
    Account,
    AssignmentHow,
    BackgroundJob,
    Contact,
    JobKind,
    Team,
    TeamMember,
    User,
    UserStatus,
)
from portal.models.base import utcnow
from portal.models.task import Task
from portal.roulette.switch import take_offline

BATCH_SIZE = 500


def may_inherit(account: Account, user: User, candidate: User | None) -> bool:
    return (
        candidate is not None
        and candidate.account_id == account.id
        and candidate.id != user.id
        and candidate.status == UserStatus.ACTIVE
        and may_own(candidate)
    )


def heirs_for(
    account: Account, user: User, *, to_user: User | None, to_team: Team | None
) -> list[int]:
    """The ids the user's things go to, in dealing order; ValidationError
    naming `to` when there is nobody fit to receive them."""
    if (to_user is None) == (to_team is None):
        raise ValidationError({"to": _("Choose one person or one team.")})
    if to_user is not None:
        if not may_inherit(account, user, to_user):
            raise ValidationError(
                {"to": _("%(name)s cannot receive contacts.", name=to_user.name)}
            )
        return [to_user.id]
    if to_team.account_id != account.id:
        raise ValidationError({"to": _("There is no such team.")})
    members = db.session.scalars(
        select(User)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == to_team.id)
        .order_by(User.id)
    ).all()
    heirs = [m.id for m in members if may_inherit(account, user, m)]
    if not heirs:
        raise ValidationError(
            {"to": _("Nobody in %(team)s can receive contacts.", team=to_team.name)}
        )
    return heirs


def delete_user(
    account: Account,
    user: User,
    *,
    to_user: User | None = None,
    to_team: Team | None = None,
    acting_user: User | None = None,
) -> BackgroundJob:
    """Take the user out now and queue the move of everything they own.
    Raises ValidationError (nothing changed) when no heir fits, when the
    acting user deletes themself, or when the user is deleted already."""
    if acting_user is not None and acting_user.id == user.id:
        raise ValidationError({"to": _("You cannot delete yourself.")})
    if user.status == UserStatus.DELETED:
        raise ValidationError({"to": _("This user is deleted already.")})
    heirs = heirs_for(account, user, to_user=to_user, to_team=to_team)
    owned = db.session.scalar(
        select(func.count()).select_from(Contact).where(Contact.owner_id == user.id)
    )
    user.status = UserStatus.DELETED
    auth.end_all_sessions(user)
    db.session.commit()
    take_offline(user)  # a pending offer goes to the next agent
    return runs.queue_job(
        JobKind.REASSIGN,
        account_id=account.id,
        started_by_id=acting_user.id if acting_user else None,
        subject_id=user.id,
        total=owned or 0,
        params={"heirs": heirs, "contacts": 0, "tasks": 0},
    )


def _work(job: BackgroundJob, lease: Lease) -> None:
    heirs: list[int] = list(job.params["heirs"])
    moved = job.processed
    while True:
        ids = db.session.scalars(
            select(Contact.id)
            .where(
                Contact.account_id == job.account_id, Contact.owner_id == job.subject_id
            )
            .order_by(Contact.id)
            .limit(BATCH_SIZE)
        ).all()
        if not ids:
            break
        changes = [
            OwnerChange(cid, job.subject_id, heirs[(moved + n) % len(heirs)])
            for n, cid in enumerate(ids)
        ]
        handed = hand_over(
            job.account_id,
            changes,
            by_user_id=job.started_by_id,
            how=AssignmentHow.REASSIGNMENT,
            now=utcnow(),
        )
        moved += len(handed.changes)
        lease.checkpoint(moved, max(job.total, moved))
        db.session.commit()
        announce(handed)
    # Open tasks follow, to the first heir (a team task stays the team's).
    tasks = db.session.execute(
        update(Task)
        .where(Task.assignee_id == job.subject_id, Task.done_at.is_(None))
        .values(assignee_id=heirs[0])
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(job)
    job.params = {**job.params, "contacts": moved, "tasks": job.params["tasks"] + tasks}
    lease.checkpoint(moved, max(job.total, moved))
    db.session.commit()


def _url(job: BackgroundJob) -> str:
    return f"/admin/users/{job.subject_id}/reassignment"


REASSIGN_KIND = Kind(
    key=JobKind.REASSIGN,
    label=_l("Reassignment of a deleted user"),
    work=_work,
    url=_url,
)
