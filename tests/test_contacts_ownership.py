"""The one hand-over: a guarded owner update, its log and timeline entry,
the notifications and the owner_changed announcement, for one contact or
many at once."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from portal.contacts import assignment
from portal.contacts.ownership import (
    OwnerChange,
    announce,
    hand_over,
    owner_changed,
)
from portal.extensions import db
from portal.models import (
    AssignmentHow,
    AssignmentLog,
    Contact,
    HistoryEntry,
    Notification,
)
from portal.models.base import utcnow
from tests import factories


def _owner(contact_id: int) -> int | None:
    return db.session.scalar(select(Contact.owner_id).where(Contact.id == contact_id))


def test_many_contacts_move_at_once_except_one_someone_changed_meanwhile(
    app: Flask, ctx, run_jobs
):
    manager = factories.make_user("admin")
    old, new, rival = (factories.make_user("attendant") for _ in range(3))
    free = factories.make_contact(unassigned=True)
    owned = factories.make_contact(owner=old)
    raced = factories.make_contact(unassigned=True)
    # A rival took `raced` after the caller read it as unowned.
    db.session.execute(
        db.update(Contact).where(Contact.id == raced.id).values(owner_id=rival.id)
    )
    db.session.commit()
    heard: list[dict] = []

    def listen(sender: Flask, **kwargs: object) -> None:
        heard.append(kwargs)

    owner_changed.connect(listen, app)
    try:
        handed = hand_over(
            manager.account_id,
            [
                OwnerChange(free.id, None, new.id),
                OwnerChange(owned.id, old.id, new.id),
                OwnerChange(raced.id, None, new.id),
            ],
            by_user_id=manager.id,
            how=AssignmentHow.BULK,
            now=utcnow(),
        )
        db.session.commit()
        announce(handed)
    finally:
        owner_changed.disconnect(listen, app)

    assert [c.contact_id for c in handed.changes] == [free.id, owned.id]
    assert [c.contact_id for c in handed.lost] == [raced.id]
    db.session.expire_all()
    assert (_owner(free.id), _owner(owned.id), _owner(raced.id)) == (
        new.id,
        new.id,
        rival.id,
    )
    assert db.session.get(Contact, free.id).status == "assigned"
    logs = db.session.execute(
        select(AssignmentLog.contact_id, AssignmentLog.from_user_id)
        .where(AssignmentLog.how == AssignmentHow.BULK)
        .order_by(AssignmentLog.contact_id)
    ).all()
    assert [tuple(log) for log in logs] == [(free.id, None), (owned.id, old.id)]
    entry = db.session.scalar(
        select(HistoryEntry)
        .where(HistoryEntry.contact_id == owned.id, HistoryEntry.kind == "assignment")
        .order_by(HistoryEntry.id.desc())
        .limit(1)
    )
    assert entry.data == {"from": old.name, "to": new.name, "how": "bulk"}
    assert heard == [
        {"how": AssignmentHow.BULK, "owners": {free.id: new.id, owned.id: new.id}}
    ]
    assert run_jobs() == 2  # one notification per contact handed to `new`
    assert (
        db.session.scalar(
            select(func.count(Notification.id)).where(Notification.user_id == new.id)
        )
        == 2
    )


def test_a_claim_announces_the_new_owner_after_its_commit(app: Flask, ctx):
    agent = factories.make_user("attendant")
    contact = factories.make_contact(unassigned=True)
    seen: list[tuple[int | None, dict]] = []

    def listen(sender: Flask, **kwargs: object) -> None:
        # Committed already: a fresh session reads the new owner.
        with app.app_context():
            seen.append((_owner(contact.id), kwargs))

    owner_changed.connect(listen, app)
    try:
        assignment.assign(agent, contact.id)
    finally:
        owner_changed.disconnect(listen, app)

    assert seen == [
        (agent.id, {"how": AssignmentHow.SELF, "owners": {contact.id: agent.id}})
    ]
