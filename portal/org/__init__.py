"""Administration of the structure: teams, units and departments."""

from portal.org.views import bp

__all__ = ["bp"]
