"""Bearer-key authentication, scopes and the per-key rate limit.

A request passes, in this order: a live key (401), the key's rate limit
(429; every authenticated request counts, whatever it asks for), the scope
the endpoint needs (403). The key and its account are in `g.api_key` and
`g.api_account` for the view.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import cache, wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from limits import RateLimitItem, parse
from sqlalchemy.exc import SQLAlchemyError

from portal.api.errors import ApiError, unauthorized
from portal.apikeys import service as keys
from portal.database import reads_outside_transaction
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


@cache
def _parsed_limit(text: str) -> RateLimitItem:
    return parse(text)


def check_rate_limit(key: ApiKey) -> None:
    """Count one request against the key's budget (API_RATE_LIMIT, one bucket
    per key shared by every endpoint); ApiError 429 with Retry-After once it
    is spent.

    This uses Flask-Limiter's own rate limiter (its strategy and its Redis
    storage) directly instead of its view decorator: the decorator also puts
    X-RateLimit-* headers on every answer, which costs two more Redis round
    trips per request on the intake's hot path; this costs one.
    """
    if not limiter.enabled:
        return
    item = _parsed_limit(current_app.config["API_RATE_LIMIT"])
    if limiter.limiter.hit(item, "api-key", str(key.id)):
        return
    reset = limiter.limiter.get_window_stats(item, "api-key", str(key.id)).reset_time
    retry = max(1, math.ceil(reset - time.time()))
    raise ApiError(
        429,
        "rate_limited",
        _("Too many requests with this key. Retry after %(n)d s.", n=retry),
        headers={"Retry-After": str(retry)},
    )


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
        def scoped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if scope not in keys.scopes_of(g.api_key):
                raise ApiError(
                    403,
                    "forbidden",
                    _("This key lacks the scope %(scope)s.", scope=scope),
                )
            return view(*args, **kwargs)

        @wraps(view)
        def authenticated(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            # On PostgreSQL the key's read (and a view's reads) cost no BEGIN
            # and ROLLBACK round trips; a view that writes ends this first
            # or writes in one statement (the intake).
            reads_outside_transaction(db.session)
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
            check_rate_limit(g.api_key)
            return scoped(*args, **kwargs)

        authenticated.api_scope = scope  # type: ignore[attr-defined]
        return authenticated  # type: ignore[return-value]

    return decorator
