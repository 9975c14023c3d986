"""Error pages that know who asked: a browser, htmx, or an API client.

For an htmx request the error is swapped into the flash region instead of the
request's target, so a failed inline edit never blanks out the row.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from portal.rendering import render_block


def _messages() -> dict[int, str]:
    return {
        400: _("The request was not understood."),
        403: _("You do not have permission to do this."),
        404: _("There is nothing here, or you may not see it."),
        405: _("That action is not allowed here."),
        409: _("Someone else changed this first."),
        410: _("This link is no longer valid."),
        413: _("That upload is too large."),
        429: _("Too many attempts. Wait a minute and try again."),
        500: _("Something went wrong on our side. It has been logged."),
    }


def error_response(
    code: int, message: str | None = None, fields: dict[str, str] | None = None
) -> Response:
    """The error as JSON (API), a flash fragment (htmx) or a page; `fields`
    (field name: message) reach the API's body, the message says it to people."""
    message = message or _messages().get(code) or _("Something went wrong.")
    if request.path.startswith("/api/"):
        return _api_error(code, message, fields or {})
    if getattr(request, "htmx", False):
        html = render_block("errors/error.html", "flash", code=code, message=message)
        response = make_response(html, code)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "beforeend"
        return response
    html = render_template("errors/error.html", code=code, message=message)
    return make_response(html, code)


_API_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "server_error",
}


def _api_error(code: int, message: str, fields: dict[str, str]) -> Response:
    body = {"error": _API_CODES.get(code, "error"), "message": message}
    response = jsonify({**body, "fields": fields})
    response.status_code = code
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return error_response(
            400, _("Your form expired or was not sent from this site. Reload the page.")
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 429:
            response = error_response(429)
            retry = getattr(exc, "retry_after", None)
            if retry:
                response.headers["Retry-After"] = str(int(retry))
            return response
        return error_response(code)

    @app.errorhandler(InternalServerError)
    def server_error(exc: InternalServerError) -> Response:
        return error_response(500)
