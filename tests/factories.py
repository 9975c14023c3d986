"""Builders for test data, going through the same services as the portal."""

from __future__ import annotations

import itertools

from portal.extensions import db
from portal.models import User
from portal.org import structure
from portal.settings.service import current_account
from portal.users.service import UserInput, create_user

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def make_user(
    role: str = "admin",
    *,
    email: str | None = None,
    name: str | None = None,
    password: str | None = PASSWORD,
    teams: list[str] = (),
    units: list[str] = (),
    departments: list[str] = (),
    **flags,
) -> User:
    """A user with `role`; teams/units/departments are created by key."""
    account = current_account()
    n = next(_seq)
    team_ids = [structure.get_or_create_team(account, key).id for key in teams]
    unit_ids = [structure.get_or_create_unit(account, key).id for key in units]
    department_ids = [
        structure.get_or_create_department(account, key).id for key in departments
    ]
    db.session.commit()
    return create_user(
        account,
        UserInput(
            email=email or f"{role}{n}@example.com",
            name=name or f"{role.title()} {n}",
            role_key=role,
            password=password,
            team_ids=team_ids,
            unit_ids=unit_ids,
            department_ids=department_ids,
            **flags,
        ),
    )


def make_contact(
    creator: User | None = None,
    *,
    name: str | None = None,
    phone: str = "",
    email: str = "",
    owner: User | None = None,
    unassigned: bool = False,
    campaign: str | None = None,
    department: str | None = None,
    origin: str = "manual",
):
    """A contact made through the service; `unassigned=True` leaves it ownerless."""
    from portal.contacts.cleaning import ContactInput
    from portal.contacts.service import create_contact
    from portal.models import Campaign

    account = current_account()
    n = next(_seq)
    if unassigned:
        # Reception enters leads without keeping them: they arrive unowned,
        # as API leads do.
        creator = _first_user("reception")
    creator = creator or _first_user("admin")
    campaign_id = None
    if campaign:
        row = db.session.scalar(
            db.select(Campaign).where(
                Campaign.account_id == account.id, Campaign.key == campaign
            )
        )
        if row is None:
            row = Campaign(account_id=account.id, key=campaign, name=campaign.title())
            db.session.add(row)
            db.session.commit()
        campaign_id = row.id
    department_id = (
        structure.get_or_create_department(account, department).id
        if department
        else None
    )
    db.session.commit()
    contact = create_contact(
        account,
        creator,
        ContactInput(
            name=name or f"Contact {n}",
            phone=phone,
            email=email or f"contact{n}@example.net",
            owner_id=owner.id if owner else None,
            campaign_id=campaign_id,
            department_id=department_id,
            origin=origin,
        ),
    )
    return contact


def add_to_campaign(user: User, key: str) -> None:
    from portal.models import Campaign

    account = current_account()
    row = db.session.scalar(
        db.select(Campaign).where(
            Campaign.account_id == account.id, Campaign.key == key
        )
    )
    if row is None:
        row = Campaign(account_id=account.id, key=key, name=key.title())
        db.session.add(row)
    row.members.append(user)
    db.session.commit()


def _first_user(role: str) -> User:
    user = db.session.scalar(db.select(User).where(User.role.has(key=role)).limit(1))
    return user or make_user(role)


def make_lead(
    contact=None,
    *,
    department: str | None = None,
    source: str = "website",
    message: str = "",
):
    """A queued web lead (as the intake API leaves it), committed."""
    from portal.models import Lead

    account = current_account()
    contact = contact or make_contact(unassigned=True, department=department)
    department_id = (
        structure.get_or_create_department(account, department).id
        if department
        else None
    )
    lead = Lead(
        account_id=account.id,
        contact_id=contact.id,
        origin="web",
        source=source,
        department_id=department_id,
        message=message or None,
        state="queued",
    )
    db.session.add(lead)
    db.session.commit()
    return lead


def go_online(user: User, available: bool = True) -> None:
    """The agent has a live socket and (by default) the switch on."""
    from portal.realtime import presence
    from portal.roulette import switch

    presence.touch(user.account_id, user.id)
    if available:
        switch.set_available(user, True)


def enable_roulette(timeout: int = 60, rounds: int = 2, **extra: str) -> None:
    from portal.settings.service import update_settings

    update_settings(
        current_account(),
        {
            "roulette.enabled": "true",
            "roulette.offer_timeout": str(timeout),
            "roulette.rounds": str(rounds),
            **extra,
        },
    )


def make_api_key(
    *scopes: str, name: str = "Website form", created_by: User | None = None
) -> str:
    """A live API key of the account (all scopes unless named); returns the
    secret to send as `Authorization: Bearer <secret>`."""
    from portal.apikeys import service as api_keys

    chosen = scopes or tuple(api_keys.SCOPES)
    return api_keys.create_key(current_account(), name, chosen, created_by).secret
