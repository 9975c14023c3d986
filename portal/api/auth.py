"""Bearer-key authentication, scopes and the per-key rate limit.

A request passes, in this order: a live key (401), the key's rate limit
(429; every authenticated request counts, whatever it asks for), the scope
the endpoint needs (403). The key and its account are in `g.api_key` and
`g.api_account` for the view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import current_app, g, request
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError

from portal.api.errors import ApiError, unauthorized
from portal.apikeys import service as keys
from portal.extensions import db, limiter
from portal.models import Account, ApiKey

F = TypeVar("F", bound=Callable)
log = logging.getLogger(__name__)


def _presented_key() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def _rate_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _limit_key() -> str:
    return f"api-key:{g.api_key.id}"


# One bucket per key, shared by every endpoint (scope "api"): a client's
# budget is its whole traffic, and two keys never share one.
_limited = limiter.shared_limit(_rate_limit, scope="api", key_func=_limit_key)


def current_key() -> ApiKey:
    return g.api_key


def current_account() -> Account:
    return g.api_account


def require_scope(scope: str) -> Callable[[F], F]:
    """The view needs a live key holding `scope` (see the module docstring)."""
    if scope not in keys.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def scoped(*args, **kwargs):
            if scope not in keys.scopes_of(g.api_key):
                raise ApiError(
                    403,
                    "forbidden",
                    _("This key lacks the scope %(scope)s.", scope=scope),
                )
            return view(*args, **kwargs)

        limited = _limited(scoped)

        @wraps(view)
        def authenticated(*args, **kwargs):
            found = keys.authenticate(_presented_key())
            if found is None:
                raise unauthorized()
            g.api_key, g.api_account = found
            try:
                keys.mark_used(g.api_key)
            except SQLAlchemyError:
                # A busy database may refuse this bookkeeping; the request
                # itself must not fail for it.
                db.session.rollback()
                log.warning("recording the use of API key %s failed", g.api_key.id)
            return limited(*args, **kwargs)

        authenticated.api_scope = scope  # type: ignore[attr-defined]
        return authenticated  # type: ignore[return-value]

    return decorator
