"""Administration of users: create, edit, suspend, activation links."""

from portal.users.views import bp

__all__ = ["bp"]
