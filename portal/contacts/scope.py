"""Who sees which contacts, and to whom a user may assign them.

One rule, applied everywhere (lists, search, counts, profile, fragments,
exports, API): a contact outside the viewer's scope does not exist for them.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select, true

from portal.errors import NotFound
from portal.extensions import db
from portal.models import Contact, TeamMember, UnitMember, User, UserStatus
from portal.models.contact import campaign_member


def led_member_ids(user: User) -> Select:
    """A select of ids of users in the teams this user coordinates and the
    units they manage (including the user)."""
    led_teams = select(TeamMember.team_id).where(
        TeamMember.user_id == user.id, TeamMember.is_coordinator.is_(True)
    )
    led_units = select(UnitMember.unit_id).where(
        UnitMember.user_id == user.id, UnitMember.is_manager.is_(True)
    )
    parts = [select(User.id).where(User.id == user.id)]
    if user.can("contacts.view_teams"):
        parts.append(
            select(TeamMember.user_id).where(TeamMember.team_id.in_(led_teams))
        )
    if user.can("contacts.view_units"):
        parts.append(
            select(UnitMember.user_id).where(UnitMember.unit_id.in_(led_units))
        )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def sees_everything(user: User) -> bool:
    return user.can("contacts.view_all") or (
        not user.is_restricted and user.can("contacts.view_own")
    )


def claimable_clause(user: User) -> ColumnElement[bool]:
    """Unassigned contacts this user may take: in no campaign, or in one of
    theirs."""
    member = exists().where(
        campaign_member.c.campaign_id == Contact.campaign_id,
        campaign_member.c.user_id == user.id,
    )
    return and_(Contact.owner_id.is_(None), or_(Contact.campaign_id.is_(None), member))


def visible_clause(user: User) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the contacts `user` may see."""
    in_account = Contact.account_id == user.account_id
    if sees_everything(user):
        return in_account
    clauses: list[ColumnElement[bool]] = []
    if user.can("contacts.view_teams") or user.can("contacts.view_units"):
        clauses.append(Contact.owner_id.in_(led_member_ids(user)))
    elif user.can("contacts.view_own"):
        clauses.append(Contact.owner_id == user.id)
    if user.can("contacts.assign"):
        # Those who hand out contacts must see the ones waiting for an owner.
        clauses.append(Contact.owner_id.is_(None))
    elif user.can("contacts.claim"):
        clauses.append(claimable_clause(user))
    if not clauses:
        return and_(in_account, false())
    return and_(in_account, or_(*clauses))


def assignable_users_clause(user: User) -> ColumnElement[bool]:
    """The WHERE clause for users this user may assign contacts to."""
    active = and_(User.account_id == user.account_id, User.status == UserStatus.ACTIVE)
    if not user.can("contacts.assign"):
        return and_(active, User.id == user.id)
    if user.can("contacts.view_all"):
        return and_(active, true())
    return and_(active, User.id.in_(led_member_ids(user)))


def may_own(user: User) -> bool:
    """Whether `user` may be a contact's owner (an active user who sees
    contacts)."""
    return user.is_active and (
        user.can("contacts.view_own") or user.can("contacts.view_all")
    )


def get_visible(user: User, contact_id: int | str) -> Contact:
    """The contact if `user` may see it; raises NotFound otherwise."""
    try:
        contact_id = int(contact_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    contact = db.session.scalar(
        select(Contact).where(Contact.id == contact_id, visible_clause(user))
    )
    if contact is None:
        raise NotFound()
    return contact
