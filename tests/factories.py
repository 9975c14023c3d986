"""Builders for test data, going through the same services as the portal."""

from __future__ import annotations

import itertools

from portal.extensions import db
from portal.models import User
from portal.org import service as org
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
    team_ids = [org.get_or_create_team(account, key).id for key in teams]
    unit_ids = [org.get_or_create_unit(account, key).id for key in units]
    department_ids = [
        org.get_or_create_department(account, key).id for key in departments
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
