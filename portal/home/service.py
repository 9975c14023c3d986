"""What each role's home shows (PRODUCT §5, "a home per role").

An agent: their contacts needing attention (new, not attended yet, open too
long) and their tasks overdue and due today; the switch and the pending
offer are in every page's top bar. Whoever supervises (dashboard.view): the
counts of their scope's queue, unassigned and open-too-long contacts, each a
link to the list behind it, and their own tasks. Reception: the walk-in
entry. Marketing and the ranking screen: what they may see today.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from portal.contacts import quick_views
from portal.contacts.query import open_too_long_clause
from portal.contacts.scope import visible_clause
from portal.extensions import db
from portal.models import Account, Contact, ContactStatus, Notification, User
from portal.tasks import lists as task_lists

ATTENTION_ROWS = 5

AGENT = "agent"
SUPERVISOR = "supervisor"
RECEPTION = "reception"
VIEWER = "viewer"  # marketing, the ranking screen: nothing to work on here


def kind_of_home(user: User) -> str:
    if user.can("dashboard.view"):
        return SUPERVISOR
    if user.can("contacts.view_own") or user.can("contacts.view_all"):
        return AGENT
    if user.can("contacts.create"):
        return RECEPTION
    return VIEWER


@dataclass
class Attention:
    """The agent's contacts that need them, a few of each, with counts."""

    new: list[Contact] = field(default_factory=list)
    unattended: list[Contact] = field(default_factory=list)
    stale: list[Contact] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.new or self.unattended or self.stale)


def attention(user: User, account: Account) -> Attention:
    mine = [visible_clause(user), Contact.owner_id == user.id]

    def first(*where: object) -> list[Contact]:
        return list(
            db.session.scalars(
                select(Contact)
                .where(*mine, *where)
                .order_by(Contact.last_activity_at, Contact.id)
                .limit(ATTENTION_ROWS)
            )
        )

    return Attention(
        new=first(Contact.status == ContactStatus.NEW),
        unattended=first(
            Contact.attended_at.is_(None),
            Contact.status.in_((ContactStatus.ASSIGNED, ContactStatus.IN_PROGRESS)),
        ),
        stale=first(open_too_long_clause(account.open_too_long_hours)),
    )


MENTION_ROWS = 5


def unread_mentions(user: User) -> list[Notification]:
    """The latest unread mentions of the user (the notification center has
    them all)."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(
                Notification.user_id == user.id,
                Notification.kind == "mention",
                Notification.read_at.is_(None),
            )
            .order_by(Notification.id.desc())
            .limit(MENTION_ROWS)
        )
    )


def due_tasks(user: User) -> task_lists.MyTasks:
    return task_lists.my_tasks(user)


def queue_counts(
    user: User, account: Account
) -> list[tuple[quick_views.QuickLink, quick_views.Count]]:
    """A supervisor's scope at a glance: each quick view (waiting in the
    queue, unassigned, open too long, ...) with its capped count; the page
    links each to the list behind it, which counts the same."""
    counts = quick_views.quick_counts(user, account)
    return [
        (link, counts[link.view]) for link in quick_views.quick_links(account, user)
    ]
