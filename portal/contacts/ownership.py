"""The one hand-over of contacts to a new owner, and its announcement.

Every owner change (a claim, an assignment, a bulk assignment, an import,
the roulette's accept) goes through `hand_over`, inside the caller's
transaction: a guarded UPDATE (the owner must still be the one the caller
read, so of two concurrent changes exactly one wins, on SQLite and
PostgreSQL), then one assignment log row and one timeline entry per contact
that moved. After the caller commits, `announce` queues each new owner's
notification and sends `owner_changed`, so that whoever cares about an owner
change (the roulette withdraws the contact's offers) learns of it without
contacts knowing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from blinker import Namespace
from flask import current_app
from sqlalchemy import ColumnElement, bindparam, case, insert, select

from portal.extensions import db
from portal.models import (
    AssignmentHow,
    AssignmentLog,
    Contact,
    ContactStatus,
    HistoryEntry,
    User,
)
from portal.models.base import utcnow
from portal.queue import enqueue

_signals = Namespace()

# Sent after the commit of a hand-over, with the app as sender and
# keywords `how` (an AssignmentHow) and `owners` ({contact id: new owner id}).
owner_changed = _signals.signal("owner-changed")
# Sent after the commit that moved a contact to another status, with the
# account and the timeline entry that records it (automatic task rules).
status_changed = _signals.signal("status-changed")


@dataclass(frozen=True)
class OwnerChange:
    """One contact moving from the owner the caller read to a new one."""

    contact_id: int
    from_user_id: int | None
    to_user_id: int


@dataclass
class HandedOver:
    """The hand-overs a transaction wrote, for `announce` after its commit."""

    how: AssignmentHow
    by_user_id: int | None
    # The contacts that moved to their new owner.
    changes: list[OwnerChange] = field(default_factory=list)
    # Those left alone: their owner was no longer the one read.
    lost: list[OwnerChange] = field(default_factory=list)
    # Filled only when each new owner is to be notified of each contact.
    log_ids: list[int] = field(default_factory=list)


def _status_once_owned() -> ColumnElement[str]:
    # A new contact counts as assigned once it has an owner; any later
    # status (in progress, won, ...) is the owner's and stays.
    return case(
        (Contact.status == ContactStatus.NEW, ContactStatus.ASSIGNED),
        else_=Contact.status,
    )


def _move_owners(
    changes: Sequence[OwnerChange], now: datetime, *, reset_attention: bool
) -> list[OwnerChange]:
    """Write the new owners where the owner is still the one read; returns
    the changes that were written."""
    values: dict[str, Any] = {
        "owner_id": bindparam("b_to"),
        "assigned_at": now,
        "last_activity_at": now,
        "status": _status_once_owned(),
    }
    if reset_attention:
        # Taking a lead is not attending it: a returning customer's new lead
        # waits for a fresh first response.
        values["attended_at"] = None
        values["first_response_seconds"] = None
    table = Contact.__table__
    statement = (
        table.update()
        .where(
            table.c.id == bindparam("b_id"),
            table.c.owner_id.is_not_distinct_from(bindparam("b_from")),
        )
        .values(**values)
    )
    params = [
        {"b_id": c.contact_id, "b_from": c.from_user_id, "b_to": c.to_user_id}
        for c in changes
    ]
    if len(changes) == 1:
        written = db.session.execute(statement, params[0]).rowcount
        return list(changes) if written else []
    db.session.execute(statement, params)
    # An executemany's rowcount is a total: read back which rows moved.
    owners = dict(
        db.session.execute(
            select(Contact.id, Contact.owner_id).where(
                Contact.id.in_([c.contact_id for c in changes])
            )
        ).all()
    )
    return [c for c in changes if owners.get(c.contact_id) == c.to_user_id]


def user_names(
    user_ids: Iterable[int | None], known: Mapping[int, str] | None = None
) -> dict[int, str]:
    """The names of these users, by id, in one query; none for the names
    the caller already has (`known`, user id: name)."""
    names = dict(known or {})
    wanted = {user_id for user_id in user_ids if user_id is not None} - set(names)
    if not wanted:
        return names
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return names | {row.id: row.name for row in rows}


def record_owners(
    account_id: int,
    changes: Sequence[OwnerChange],
    *,
    by_user_id: int | None,
    how: AssignmentHow,
    now: datetime,
    return_ids: bool = False,
    names: Mapping[int, str] | None = None,
) -> list[int]:
    """Write the assignment log row and the timeline entry of each change,
    in bulk. For an owner already written (a contact created with its
    owner); `hand_over` calls it for the ones it moved. Returns the log ids
    when `return_ids`, else an empty list. `names`: user names the caller
    has already read (user id: name), not read again."""
    if not changes:
        return []
    names = user_names(
        [c.from_user_id for c in changes] + [c.to_user_id for c in changes],
        names,
    )
    logs = [
        {
            "account_id": account_id,
            "contact_id": c.contact_id,
            "from_user_id": c.from_user_id,
            "to_user_id": c.to_user_id,
            "by_user_id": by_user_id,
            "how": how,
            "created_at": now,
        }
        for c in changes
    ]
    entries = [
        {
            "account_id": account_id,
            "contact_id": c.contact_id,
            "kind": "assignment",
            "author_id": by_user_id,
            "body": None,
            "data": {
                "from": names.get(c.from_user_id) if c.from_user_id else None,
                "to": names.get(c.to_user_id),
                "how": str(how),
            },
            "created_at": now,
        }
        for c in changes
    ]
    ids: list[int] = []
    if return_ids:
        ids = list(
            db.session.scalars(
                insert(AssignmentLog).returning(
                    AssignmentLog.id, sort_by_parameter_order=True
                ),
                logs,
            )
        )
    else:
        # A plain executemany: the import writes a thousand at a time.
        db.session.execute(AssignmentLog.__table__.insert(), logs)
    db.session.execute(HistoryEntry.__table__.insert(), entries)
    return ids


def hand_over(
    account_id: int,
    changes: Sequence[OwnerChange],
    *,
    by_user_id: int | None,
    how: AssignmentHow,
    now: datetime,
    notify_each: bool = True,
    reset_attention: bool = False,
    names: Mapping[int, str] | None = None,
) -> HandedOver:
    """Give each contact to its new owner, in the caller's transaction.

    A contact whose owner is no longer `from_user_id` is left alone (someone
    changed it meanwhile): it is in the answer's `lost`, and nothing is
    written for it. A change to the owner it already has is no change.
    `notify_each`: each new owner is to hear of each contact (the import
    tells each owner once per import instead). `reset_attention`: the new
    owner's first response is measured afresh. `names`: user names the
    caller has already read, as `record_owners` takes them. Nothing is
    committed; call `announce` after the commit.
    """
    wanted = [c for c in changes if c.from_user_id != c.to_user_id]
    moved = _move_owners(wanted, now, reset_attention=reset_attention) if wanted else []
    log_ids = record_owners(
        account_id,
        moved,
        by_user_id=by_user_id,
        how=how,
        now=now,
        return_ids=notify_each,
        names=names,
    )
    written = set(moved)
    lost = [c for c in wanted if c not in written]
    return HandedOver(how, by_user_id, moved, lost, log_ids)


def announce(handed: HandedOver) -> None:
    """After the commit: queue the new owners' notifications (none for a
    contact someone took for themself) and send `owner_changed`."""
    if not handed.changes:
        return
    for log_id, change in zip(handed.log_ids, handed.changes, strict=False):
        if change.to_user_id != handed.by_user_id:
            enqueue("jobs.notifications.notify_assignment", log_id)
    owner_changed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        how=handed.how,
        owners={c.contact_id: c.to_user_id for c in handed.changes},
    )


def log_assignment(
    contact: Contact,
    from_user: User | None,
    to_user: User,
    by_user: User | None,
    how: AssignmentHow,
) -> None:
    """Record an owner already written (a contact created with its owner)
    in the log and on the timeline."""
    record_owners(
        contact.account_id,
        [OwnerChange(contact.id, from_user.id if from_user else None, to_user.id)],
        by_user_id=by_user.id if by_user else None,
        how=how,
        now=utcnow(),
    )
