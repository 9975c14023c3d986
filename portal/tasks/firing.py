"""Automatic task rules at work: an event happened, each active rule of its
kind whose conditions match gives its task, exactly once per event.

Run in RQ jobs (jobs.rules), never in the request that caused the event.
"Exactly once" is the unique (rule, event key) of RuleFiring, written in
the same transaction as the task: a job run twice, or two at once, gives
one task. Rules give tasks and nothing else, and a task given is no event:
no rule can set off another or itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.contacts.query import open_too_long_clause
from portal.extensions import db
from portal.models import (
    AssignmentLog,
    Contact,
    HistoryEntry,
    Lead,
    Offer,
    Team,
    TeamMember,
    UnitMember,
    User,
    UserStatus,
)
from portal.models.base import utcnow
from portal.models.task import RuleFiring, Task, TaskRule
from portal.tasks.service import give

IDLE_BATCH = 500


@dataclass(frozen=True)
class Event:
    kind: str
    key: str  # unique per happening, e.g. "lead:42"
    account_id: int
    contact: Contact | None
    facts: dict  # what conditions look at: origin, department_id, status, ...


def _leader_of(member: type, group: str, flag: str, owner_id: int) -> int | None:
    """An active leader (not the owner) of a team or unit the owner is in."""
    group_column, leads = getattr(member, group), getattr(member, flag)
    groups = select(group_column).where(member.user_id == owner_id)
    return db.session.scalar(
        select(member.user_id)
        .join(User, User.id == member.user_id)
        .where(
            group_column.in_(groups),
            leads.is_(True),
            member.user_id != owner_id,
            User.status == UserStatus.ACTIVE,
        )
        .order_by(member.user_id)
        .limit(1)
    )


def _owner_lead(owner_id: int) -> int | None:
    """The owner's coordinator (of a team they are in), else the manager of
    a unit they are in."""
    return _leader_of(TeamMember, "team_id", "is_coordinator", owner_id) or _leader_of(
        UnitMember, "unit_id", "is_manager", owner_id
    )


def _for_whom(rule: TaskRule, event: Event) -> tuple[int | None, int | None]:
    """(user id, team id) the rule's task is for at this event; (None, None)
    when there is nobody (an owner-less contact, say)."""
    owner_id = event.contact.owner_id if event.contact else None
    if rule.assignee == "owner":
        return owner_id, None
    if rule.assignee == "owner_lead":
        return (_owner_lead(owner_id) if owner_id else None), None
    if rule.assignee == "user":
        user = db.session.get(User, rule.assignee_id or 0)
        ok = user and user.account_id == rule.account_id and user.is_active
        return (user.id if ok else None), None
    if rule.assignee == "team":
        team = db.session.get(Team, rule.assignee_id or 0)
        return None, (team.id if team and team.account_id == rule.account_id else None)
    return None, None


def matches(rule: TaskRule, event: Event) -> bool:
    return all(
        event.facts.get(name) == wanted
        for name, wanted in (rule.conditions or {}).items()
        if name != "days" and wanted not in (None, "")
    )


def active_rules(account_id: int, kind: str) -> list[TaskRule]:
    return list(
        db.session.scalars(
            select(TaskRule)
            .where(
                TaskRule.account_id == account_id,
                TaskRule.event == kind,
                TaskRule.active.is_(True),
            )
            .order_by(TaskRule.id)
        )
    )


def fire(event: Event, rules: list[TaskRule] | None = None) -> int:
    """Give each matching rule's task for `event` (of `rules`, else of every
    active rule of its kind); returns how many were given now (0 when the
    event was handled before)."""
    if rules is None:
        rules = active_rules(event.account_id, event.kind)
    given = 0
    for rule in rules:
        if not matches(rule, event):
            continue
        user_id, team_id = _for_whom(rule, event)
        if user_id is None and team_id is None:
            continue
        due = utcnow() + timedelta(hours=rule.due_hours) if rule.due_hours else None
        task = Task(
            account_id=event.account_id,
            title=rule.title,
            due_at=due,
            contact_id=event.contact.id if event.contact else None,
            assignee_id=user_id,
            team_id=team_id,
        )
        firing = RuleFiring(
            rule_id=rule.id,
            event_key=event.key,
            contact_id=event.contact.id if event.contact else None,
            task=task,
        )
        try:
            give(task, firing)
        except IntegrityError:  # this rule already fired for this event
            db.session.rollback()
            continue
        given += 1
    return given


# --- the events ------------------------------------------------------------


def lead_created(lead_id: int) -> int:
    lead = db.session.get(Lead, lead_id)
    if lead is None:
        return 0
    facts = {
        "origin": lead.origin,
        "department_id": lead.department_id,
        "campaign_id": lead.campaign_id,
    }
    return fire(
        Event("lead_created", f"lead:{lead.id}", lead.account_id, lead.contact, facts)
    )


def status_changed(entry_id: int) -> int:
    entry = db.session.get(HistoryEntry, entry_id)
    if entry is None or entry.kind != "status":
        return 0
    contact = db.session.get(Contact, entry.contact_id)
    facts = {"status": (entry.data or {}).get("to")}
    return fire(
        Event("status_changed", f"status:{entry.id}", entry.account_id, contact, facts)
    )


def offer_expired(offer_id: int) -> int:
    offer = db.session.get(Offer, offer_id)
    if offer is None or offer.state != "expired":
        return 0
    lead = db.session.get(Lead, offer.lead_id)
    contact = lead.contact if lead else None
    facts = {"department_id": lead.department_id if lead else None}
    return fire(
        Event("offer_expired", f"offer:{offer.id}", offer.account_id, contact, facts)
    )


def contacts_assigned(contact_ids: list[int]) -> int:
    """The latest hand-over of each contact (its AssignmentLog row is the
    event's identity)."""
    given = 0
    for contact_id in contact_ids:
        log = db.session.scalar(
            select(AssignmentLog)
            .where(AssignmentLog.contact_id == contact_id)
            .order_by(AssignmentLog.id.desc())
            .limit(1)
        )
        contact = db.session.get(Contact, contact_id)
        if log is None or contact is None or log.to_user_id != contact.owner_id:
            continue
        given += fire(
            Event(
                "contact_assigned", f"assign:{log.id}", contact.account_id, contact, {}
            )
        )
    return given


def _idle_days(rule: TaskRule) -> int:
    try:
        return int((rule.conditions or {}).get("days") or 0)
    except (TypeError, ValueError):
        return 0


def idle_contacts(account_id: int) -> int:
    """ "No activity for N days": each open contact idle that long fires each
    such rule once per idle stretch (a later activity starts a new one).
    At most IDLE_BATCH contacts per rule and look, the longest idle first."""
    given = 0
    for rule in active_rules(account_id, "no_activity"):
        days = _idle_days(rule)
        if days < 1:
            continue
        fired_since = (
            select(RuleFiring.id)
            .where(
                RuleFiring.contact_id == Contact.id,
                RuleFiring.rule_id == rule.id,
                RuleFiring.created_at > Contact.last_activity_at,
            )
            .exists()
        )
        contacts = db.session.scalars(
            select(Contact)
            .where(
                Contact.account_id == account_id,
                open_too_long_clause(days * 24),
                ~fired_since,
            )
            .order_by(Contact.last_activity_at, Contact.id)
            .limit(IDLE_BATCH)
        ).all()
        for contact in contacts:
            stretch = int(contact.last_activity_at.timestamp())
            key = f"idle:{contact.id}:{stretch}"
            given += fire(Event("no_activity", key, account_id, contact, {}), [rule])
    return given


def idle_sweep() -> int:
    """The worker's look, every account with a "no activity" rule."""
    accounts = db.session.scalars(
        select(TaskRule.account_id)
        .where(TaskRule.event == "no_activity", TaskRule.active.is_(True))
        .distinct()
    ).all()
    return sum(idle_contacts(account_id) for account_id in accounts)
