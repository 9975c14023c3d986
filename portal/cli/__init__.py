"""Flask CLI commands (CONTRACT): create-user, settings, seed-demo, worker."""

from __future__ import annotations

from flask import Flask

from portal.cli import commands


def register_commands(app: Flask) -> None:
    for command in commands.ALL:
        app.cli.add_command(command)
