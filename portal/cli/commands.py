"""Flask CLI commands (CONTRACT): create-user, settings, seed-demo, worker.

Commands are thin like views: parse the options, call one service function,
print the outcome. Bad input prints one line per field (naming the option)
and exits with status 1 having written nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import gettext as _

from portal.apikeys import service as api_keys
from portal.cli import demo
from portal.cli.translations import translations_group
from portal.cli.worker import run_worker
from portal.errors import NotFound, ValidationError
from portal.extensions import db
from portal.org import structure
from portal.settings import service as settings_service
from portal.users.service import UserInput, create_user

# Service field names as the operator typed them on the command line.
CREATE_USER_OPTIONS = {
    "email": "EMAIL",
    "name": "--name",
    "role": "--role",
    "password": "--password",
    "language": "--language",
    "teams": "--team",
    "units": "--unit",
    "departments": "--department",
}


def fail(errors: dict[str, str], options: dict[str, str] | None = None) -> NoReturn:
    """Print one line per bad field and exit with status 1."""
    for field, message in errors.items():
        name = (options or {}).get(field, field)
        click.echo(
            _("Error: %(field)s: %(message)s", field=name, message=message), err=True
        )
    raise click.exceptions.Exit(1)


@click.command("create-user")
@click.argument("email")
@click.option("--role", required=True, help="Role key, e.g. admin or attendant.")
@click.option("--name", required=True, help="Full name.")
@click.option(
    "--password",
    default=None,
    help="Set a password now; without it an activation link is mailed.",
)
@click.option("--language", default=None, help="en, pt_BR, es or ru.")
@click.option("--team", "teams", multiple=True, help="Team key (repeatable).")
@click.option("--unit", "units", multiple=True, help="Unit key (repeatable).")
@click.option(
    "--department", "departments", multiple=True, help="Department key (repeatable)."
)
@with_appcontext
def create_user_command(
    email: str,
    role: str,
    name: str,
    password: str | None,
    language: str | None,
    teams: tuple[str, ...],
    units: tuple[str, ...],
    departments: tuple[str, ...],
) -> None:
    """Create a user; teams, units and departments are created by key."""
    account = settings_service.current_account()
    keys = {"teams": teams, "units": units, "departments": departments}
    getters = {
        "teams": structure.get_or_create_team,
        "units": structure.get_or_create_unit,
        "departments": structure.get_or_create_department,
    }
    ids: dict[str, list[int]] = {}
    errors: dict[str, str] = {}
    for field, raw_keys in keys.items():
        try:
            clean = [structure.clean_key(raw, field=field) for raw in raw_keys]
        except ValidationError as exc:
            errors.update(exc.fields)
            continue
        ids[field] = [getters[field](account, key).id for key in clean]
    if errors:
        db.session.rollback()
        fail(errors, CREATE_USER_OPTIONS)
    try:
        user = create_user(
            account,
            UserInput(
                email=email,
                name=name,
                role_key=role,
                password=password,
                language=language,
                team_ids=ids["teams"],
                unit_ids=ids["units"],
                department_ids=ids["departments"],
            ),
        )
    except ValidationError as exc:
        # Teams/units/departments created above for this user go too.
        db.session.rollback()
        fail(exc.fields, CREATE_USER_OPTIONS)
    click.echo(
        _(
            "Created user %(email)s (%(role)s), id %(id)d.",
            email=user.email,
            role=user.role.display_name,
            id=user.id,
        )
    )
    if password is None:
        click.echo(
            _(
                "An activation link is queued; the worker mails it to %(email)s.",
                email=user.email,
            )
        )


settings_group = AppGroup("settings", help="Show or change the account settings.")


def _format_setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@settings_group.command("show")
def settings_show() -> None:
    """Print every setting as KEY = VALUE."""
    account = settings_service.current_account()
    for key, value in settings_service.settings_dict(account).items():
        click.echo(f"{key} = {_format_setting(value)}")


# ignore_unknown_options: a VALUE such as "-1" is a value, not an option.
@settings_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
def settings_set(key: str, value: str) -> None:
    """Change one setting, e.g. `settings set roulette.enabled true`."""
    account = settings_service.current_account()
    try:
        settings_service.update_settings(account, {key: value})
    except ValidationError as exc:
        db.session.rollback()
        known = ", ".join(s.key for s in settings_service.SETTINGS)
        if key not in settings_service.SETTINGS_BY_KEY:
            exc.fields[key] = _(
                "Unknown setting. Known settings: %(keys)s.", keys=known
            )
        fail(exc.fields)
    current = settings_service.settings_dict(account)[key]
    click.echo(f"{key} = {_format_setting(current)}")


api_key_group = AppGroup("api-key", help="Create, list or revoke API keys.")


@api_key_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="leads:write, leads:read or contacts:read (repeatable; default: all).",
)
def api_key_create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it; it is shown only this once."""
    account = settings_service.current_account()
    try:
        new = api_keys.create_key(account, name, scopes or tuple(api_keys.SCOPES))
    except ValidationError as exc:
        db.session.rollback()
        fail(exc.fields, {"name": "NAME", "scopes": "--scope"})
    click.echo(new.secret)
    click.echo(
        _(
            "Key %(id)d (%(name)s, %(scopes)s) created. Store it now: it is "
            "not shown again.",
            id=new.key.id,
            name=new.key.name,
            scopes=new.key.scopes,
        ),
        err=True,
    )


@api_key_group.command("list")
def api_key_list() -> None:
    """Print every key: id, name, prefix, scopes, created, last used, revoked."""

    def moment(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    for key in api_keys.list_keys(settings_service.current_account()):
        click.echo(
            "\t".join(
                [
                    str(key.id),
                    key.name,
                    key.prefix + "…",
                    key.scopes,
                    moment(key.created_at),
                    moment(key.last_used_at),
                    _("revoked %(at)s", at=moment(key.revoked_at))
                    if key.revoked_at
                    else _("active"),
                ]
            )
        )


@api_key_group.command("revoke")
@click.argument("key_id", type=int)
def api_key_revoke(key_id: int) -> None:
    """Revoke a key by id; requests with it answer 401 at once."""
    try:
        key = api_keys.revoke_key(settings_service.current_account(), key_id)
    except NotFound:
        fail({"ID": _("No API key has this id.")})
    click.echo(_("Key %(id)d (%(name)s) revoked.", id=key.id, name=key.name))


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create demo teams, units, departments and one user per role (idempotent)."""
    print_demo_logins(demo.seed_demo())


def print_demo_logins(logins: list[demo.DemoLogin]) -> None:
    """Print the demo accounts and their shared password."""
    if not logins:
        click.echo(_("There are no demo accounts."))
        return
    click.echo(_("Demo logins (password: %(password)s):", password=demo.DEMO_PASSWORD))
    width = max(len(login.role) for login in logins)
    for login in logins:
        click.echo(f"  {login.role.ljust(width)}  {login.email}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run an RQ worker with scheduler on the app's queue (Ctrl-C stops it)."""
    run_worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]


ALL: list[click.Command] = [
    translations_group,
    create_user_command,
    settings_group,
    api_key_group,
    seed_demo_command,
    worker_command,
]
