"""API keys for the JSON API: the admin page and the key service."""

from portal.apikeys.views import bp

__all__ = ["bp"]
