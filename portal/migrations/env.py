"""Alembic environment, run through Flask-Migrate inside the app context."""

from __future__ import annotations

import logging

from alembic import context
from alembic.autogenerate.api import AutogenContext
from flask import current_app

from portal.models.base import UTCDateTime

logger = logging.getLogger("alembic.env")
config = context.config

# Operators running `flask db upgrade` should see which revisions ran, without
# reconfiguring the logging of a test session or a running app.
if not logging.getLogger().handlers:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.INFO)


def _db():
    return current_app.extensions["migrate"].db


def _metadata():
    return _db().metadata


def render_item(kind: str, item: object, autogen_context: AutogenContext) -> str | bool:
    """Write the UTC column type as the plain type it stores as: a revision
    then needs no import of the app, and reads the same as the older ones."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    url = _db().engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def skip_empty_autogenerate(context_, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    conf_args.setdefault("render_item", render_item)

    with _db().engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=_metadata(), **conf_args
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
