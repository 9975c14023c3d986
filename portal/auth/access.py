"""Permission checks for views: every page and action names what it needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

F = TypeVar("F", bound=Callable)


def require(*permissions: str, hidden: bool = False) -> Callable[[F], F]:
    """Sign-in plus at least one of `permissions`, else 403 (404 when the
    page is `hidden`: one whose very existence is not for other roles)."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if not any(current_user.can(p) for p in permissions):
                abort(404 if hidden else 403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def can(permission: str) -> bool:
    """For templates and services: does the signed-in user hold `permission`?"""
    return bool(current_user.is_authenticated and current_user.can(permission))
