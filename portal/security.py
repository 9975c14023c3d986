"""Security headers on every response; no control character in any form or
query value reaches a view; text people typed is shown isolated.

C0 control characters other than tab, line feed and carriage return are never
typed into a form, and PostgreSQL refuses NUL in text where SQLite stores it:
checking once, before any view, gives the same 422 naming the field on both
databases and from every form, with nothing written. The JSON API keeps its
own refusal of such bodies; its query strings are checked here too.

Names and texts people typed are shown through the `bdi` template filter (or
in an element with `dir="auto"`): a right-to-left override (U+202E) in a
contact's name then reorders only that name, never the text around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Flask, Response, request
from flask_babel import gettext as _
from markupsafe import Markup

from portal.errors_http import error_response

# htmx is configured (see base.html) not to inject its own <style>, and no
# template carries inline script: scripts and stylesheets stay 'self' only.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # htmx 4 writes style attributes while it swaps (it carries over the
        # old element's); attributes cannot run script, so allowing them keeps
        # swaps working without opening stylesheets or scripts.
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' data:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# C0 controls but tab (09), line feed (0A) and carriage return (0D).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def first_field_with_control_character(
    pairs: Iterable[tuple[str, str]],
) -> str | None:
    """The name of the first field whose name or value holds a control
    character no form takes, shown with those characters replaced; or None."""
    for name, value in pairs:
        if _CONTROL_CHARACTER.search(name) or _CONTROL_CHARACTER.search(value):
            return _CONTROL_CHARACTER.sub("\N{REPLACEMENT CHARACTER}", name)
    return None


def refuse_control_characters() -> Response | None:
    """Answer 422 naming the field when a query or form value, or an uploaded
    file's name (not a JSON body, not a file's content), holds a control
    character."""
    pairs: list[tuple[str, str]] = list(request.args.items(multi=True))
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        pairs += request.form.items(multi=True)
        # The browser's filename is kept to show it again.
        files = request.files.items(multi=True)
        pairs += [(name, upload.filename or "") for name, upload in files]
    field = first_field_with_control_character(pairs)
    if field is None:
        return None
    message = _(
        "The field “%(field)s” contains a control character (such as NUL) "
        "that no form accepts. Remove it and send again.",
        field=field,
    )
    return error_response(422, message, fields={field: message})


def isolate(value: object) -> Markup:
    """`value` escaped inside a <bdi>, which ends every direction embedding
    and override it holds; None or an empty text is nothing at all."""
    if value is None or value == "":
        return Markup("")
    return Markup("<bdi>{}</bdi>").format(value)


def init_app(app: Flask) -> None:
    # Registered after CSRF's own check: a forged request is refused as such.
    app.before_request(refuse_control_characters)
    app.add_template_filter(isolate, "bdi")

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        # Pages hold personal data: never keep them in shared caches.
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
        return response
