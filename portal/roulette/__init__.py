"""The lead roulette: routing, offers and the agent's presence switch."""

from portal.roulette.views import bp

__all__ = ["bp"]
