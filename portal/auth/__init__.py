"""Sign-in, sign-out, activation and the permission checks every view uses."""

from portal.auth.views import bp

__all__ = ["bp"]
