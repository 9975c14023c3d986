"""Flask CLI commands (CONTRACT): create-user, settings, seed-demo, worker,
and the users' delete-user, suspend-user, unsuspend-user."""

from __future__ import annotations

from flask import Flask

from portal.cli import commands, users


def register_commands(app: Flask) -> None:
    for command in commands.ALL:
        app.cli.add_command(command)
    for command in users.ALL:
        app.cli.add_command(command)
