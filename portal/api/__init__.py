"""The JSON API (CONTRACT: lead intake, contacts, health)."""

from portal.api.views import bp

__all__ = ["bp"]
