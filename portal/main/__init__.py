"""The agent's home page and the pieces of the top bar."""

from portal.main.views import bp

__all__ = ["bp"]
