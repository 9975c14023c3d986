"""Administration of roles: built-in presets and custom roles."""

from portal.roles.views import bp

__all__ = ["bp"]
