"""Extensions, created unbound; `create_app` binds them with `init_app`."""

from __future__ import annotations

import flask_limiter
from flask import request
from flask_babel import Babel
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so that migrations can alter them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Objects stay readable after a commit: a view that commits and then renders
# (every htmx action) would otherwise reload the signed-in user, their role
# and its permissions, and each record it shows.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
login_manager = LoginManager()
htmx = Htmx()
sock = Sock()
csrf = CSRFProtect()
babel = Babel()


def _client_address() -> str:
    return get_remote_address() or request.remote_addr or "unknown"


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter without its check before every request while no limit
    applies to every request.

    Our limits are decorators on the views they limit (sign-in), and each
    decorator checks its own. The hook Flask-Limiter runs before every
    request then resolves an empty set of default, application and
    blueprint limits: 1.4 % of a web process's CPU in the roulette bench.
    Once such a limit exists (RATELIMIT_DEFAULT, a blueprint's, an in-memory
    fallback), or this Flask-Limiter keeps its limits elsewhere, the hook
    runs as before.
    """

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        manager = self.limit_manager
        if in_middleware and not (
            manager.default_limits
            or manager.application_limits
            or getattr(manager, "_blueprint_limits", True)
            # Limits for every request while Redis is down.
            or getattr(self, "_in_memory_fallback", True)
        ):
            return
        super()._check_request_limit(callable_name, in_middleware)


# Storage is configured in create_app from the Redis URL, so every web process
# counts against the same limits.
limiter = Limiter(key_func=_client_address, default_limits=[])
