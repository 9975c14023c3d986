"""Account settings: process mode, roulette, store flow."""

from portal.settings.views import bp

__all__ = ["bp"]
