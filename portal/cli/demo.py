"""Demo data for `flask --app app seed-demo` and the first `make run`.

Everything here is fake and public on purpose: the demo password is written in
the README, so a deployment that keeps the demo accounts must change or
suspend them. Seeding is idempotent: what already exists (by key or email) is
left exactly as it is, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, Unit, User
from portal.org import structure
from portal.settings.service import current_account
from portal.users.service import UserInput, create_user

# A documented demo value, not a secret: every demo account shares it.
DEMO_PASSWORD = "roleta-demo-pass"  # noqa: S105
DEMO_EMAIL_DOMAIN = "demo.example.com"

TEAMS: tuple[tuple[str, str], ...] = (
    ("north", "Team North"),
    ("south", "Team South"),
)
# (key, name, store_flow)
UNITS: tuple[tuple[str, str, bool], ...] = (
    ("downtown", "Downtown Store", True),
    ("riverside", "Riverside Branch", False),
)
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("sales", "Sales"),
    ("rentals", "Rentals"),
    ("support", "Support"),
)


@dataclass(frozen=True)
class DemoUser:
    """One demo account: a built-in role and where that role belongs."""

    role: str
    name: str
    teams: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()

    @property
    def email(self) -> str:
        return f"{self.role}@{DEMO_EMAIL_DOMAIN}"


# One user of every built-in role. Team roles sit in Team North, unit roles in
# the Downtown Store; the agents get the departments whose leads they work.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "Ana Admin"),
    DemoUser("coordinator", "Carlos Coordinator", teams=("north",)),
    DemoUser("manager", "Marta Manager", units=("downtown",)),
    DemoUser(
        "attendant",
        "Alice Attendant",
        teams=("north",),
        departments=("sales", "rentals"),
    ),
    DemoUser("seller", "Sergio Seller", units=("downtown",), departments=("sales",)),
    DemoUser("reception", "Rita Reception"),
    DemoUser("media", "Mateus Media"),
    DemoUser("ranking", "Ranking Screen"),
    DemoUser(
        "callcenter", "Celia Call Center", teams=("north",), departments=("support",)
    ),
)


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str = DEMO_PASSWORD


def seed_demo() -> list[DemoLogin]:
    """Create the demo organisation and users where missing; return the logins.

    Demo users go through `create_user`, so the admin pages' rules apply; it
    raises ValidationError if one is refused (a bug in this table, not input).
    """
    account = current_account()
    first_seed = not demo_logins()
    _seed_organisation(account)
    _seed_users(account)
    if first_seed:
        # A demo shows the roulette working: leads posted to the API pop up
        # for Alice Attendant once she switches to Available. Only on the
        # first seed: an admin who turns it off later keeps it off.
        account.roulette_enabled = True
        db.session.commit()
    # Contacts come with the contacts feature: add a `_seed_contacts(account)`
    # step here (about 50 placeholder contacts spread over the demo agents),
    # skipping when demo contacts already exist, like the steps above.
    return demo_logins()


def has_users() -> bool:
    """Whether anyone has an account yet (the first `make run` seeds if not)."""
    return bool(db.session.scalar(select(func.count(User.id))))


def demo_logins() -> list[DemoLogin]:
    """The demo accounts that exist, in role order."""
    existing = set(
        db.session.scalars(
            select(User.email).where(User.email.in_([u.email for u in DEMO_USERS]))
        )
    )
    return [DemoLogin(u.role, u.email) for u in DEMO_USERS if u.email in existing]


def _seed_organisation(account: Account) -> None:
    for key, name in TEAMS:
        structure.get_or_create_team(account, key, name)
    for key, name, store_flow in UNITS:
        existed = _unit_exists(account, key)
        unit = structure.get_or_create_unit(account, key, name)
        if not existed:
            # Only on creation: an admin's later choice is theirs to keep.
            unit.store_flow = store_flow
    for key, name in DEPARTMENTS:
        structure.get_or_create_department(account, key, name)
    db.session.commit()


def _unit_exists(account: Account, key: str) -> bool:
    query = select(Unit.id).where(Unit.account_id == account.id, Unit.key == key)
    return db.session.scalar(query) is not None


def _seed_users(account: Account) -> None:
    existing = set(
        db.session.scalars(select(User.email).where(User.account_id == account.id))
    )
    for demo in DEMO_USERS:
        if demo.email in existing:
            continue
        create_user(
            account,
            UserInput(
                email=demo.email,
                name=demo.name,
                role_key=demo.role,
                password=DEMO_PASSWORD,
                team_ids=[
                    structure.get_or_create_team(account, k).id for k in demo.teams
                ],
                unit_ids=[
                    structure.get_or_create_unit(account, k).id for k in demo.units
                ],
                department_ids=[
                    structure.get_or_create_department(account, k).id
                    for k in demo.departments
                ],
            ),
        )
