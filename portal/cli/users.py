"""Flask CLI (CONTRACT "Users"): delete-user, suspend-user, unsuspend-user."""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext
from flask_babel import gettext as _
from sqlalchemy import func, select

from portal.cli.commands import fail
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import BackgroundJob, Team, User
from portal.models.jobs import ACTIVE_STATUSES
from portal.settings.service import current_account
from portal.users import offboarding
from portal.users.service import reactivate_user, suspend_user

WAIT_SECONDS = 3600


def _user(email: str, option: str = "EMAIL") -> User:
    account = current_account()
    user = db.session.scalar(
        select(User).where(
            User.account_id == account.id,
            func.lower(User.email) == email.strip().lower(),
        )
    )
    if user is None:
        fail({option: _("No user has the email %(email)s.", email=email)})
    return user


@click.command("delete-user")
@click.argument("email")
@click.option("--to", "to_email", default=None, help="Who gets their contacts.")
@click.option("--to-team", "to_team", default=None, help="A team key: round-robin.")
@click.option("--wait", is_flag=True, help="Block until the move ends; print counts.")
@with_appcontext
def delete_user_command(
    email: str, to_email: str | None, to_team: str | None, wait: bool
) -> None:
    """Delete a user; a background job gives everything they own to --to or
    round-robin across --to-team. Prints the job's id."""
    account = current_account()
    user = _user(email)
    heir = _user(to_email, "--to") if to_email else None
    team = None
    if to_team:
        team = db.session.scalar(
            select(Team).where(Team.account_id == account.id, Team.key == to_team)
        )
        if team is None:
            fail({"--to-team": _("There is no such team.")})
    try:
        job = offboarding.delete_user(account, user, to_user=heir, to_team=team)
    except ValidationError as exc:
        fail(exc.fields, {"to": "--to/--to-team"})
    click.echo(job.id)
    if not wait:
        return
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        db.session.expire_all()
        job = db.session.get(BackgroundJob, job.id)
        if job.status not in ACTIVE_STATUSES:
            break
        if time.monotonic() > deadline:
            fail({"--wait": _("The job has not ended yet; is a worker running?")})
        time.sleep(0.5)
    click.echo(
        _(
            "%(status)s: %(contacts)d contacts and %(tasks)d tasks moved.",
            status=job.status,
            contacts=job.params.get("contacts", 0),
            tasks=job.params.get("tasks", 0),
        )
    )
    if job.status != "done":
        raise click.exceptions.Exit(1)


@click.command("suspend-user")
@click.argument("email")
@with_appcontext
def suspend_user_command(email: str) -> None:
    """Take a user out at once (reversible): sessions end, routing stops."""
    suspend_user(_user(email))
    click.echo(_("Suspended."))


@click.command("unsuspend-user")
@click.argument("email")
@with_appcontext
def unsuspend_user_command(email: str) -> None:
    """Let a suspended user sign in again."""
    user = _user(email)
    if user.status != "suspended":
        fail({"EMAIL": _("This user is not suspended.")})
    reactivate_user(user)
    click.echo(_("Active again."))


ALL: list[click.Command] = [
    delete_user_command,
    suspend_user_command,
    unsuspend_user_command,
]
