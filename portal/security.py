"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, Response

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


def init_app(app: Flask) -> None:
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
