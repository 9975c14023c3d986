"""Every API error is JSON: `{"error": code, "message": text, "fields": {...}}`.

Errors raised inside the API blueprint's views are turned into that shape
here; errors outside them (an unknown /api/ path, 405, 500) by
`portal.errors_http`, which answers the same shape for /api/ paths.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from flask_babel import gettext as _

from portal.contacts.cursor import BadCursor
from portal.errors import Conflict, Forbidden, NotFound, ValidationError


class ApiError(Exception):
    """An answer other than success; `error` is the machine-readable code."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def json_error(
    status: int,
    error: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify({"error": error, "message": message, "fields": fields or {}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        _("Send a valid API key as 'Authorization: Bearer <key>'."),
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


def register(bp: Blueprint) -> None:
    """Install the JSON error handlers on the API blueprint."""

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return json_error(exc.status, exc.error, exc.message, exc.fields, exc.headers)

    @bp.errorhandler(ValidationError)
    def invalid(exc: ValidationError) -> Response:
        return json_error(
            422, "invalid", _("Some fields are not valid."), {**exc.fields}
        )

    @bp.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Response:
        return json_error(
            404, "not_found", _("There is nothing here, or this key may not see it.")
        )

    @bp.errorhandler(Forbidden)
    def forbidden(exc: Forbidden) -> Response:
        return json_error(403, "forbidden", str(exc) or _("Not allowed."))

    @bp.errorhandler(Conflict)
    def conflict(exc: Conflict) -> Response:
        return json_error(409, "conflict", str(exc))

    @bp.errorhandler(BadCursor)
    def bad_cursor(exc: BadCursor) -> Response:
        return json_error(400, "bad_request", str(exc), {"cursor": str(exc)})
