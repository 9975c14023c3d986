"""Realtime: the websocket endpoint, presence and cross-process fan-out."""

from portal.realtime.views import bp

__all__ = ["bp"]
