"""What the roulette tells the features above it, after each commit: an
offer was made or ended, an agent's switch changed. The roulette knows no
listener (the live board, the automatic task rules subscribe in
create_app); a listener's failure never stops the roulette."""

from __future__ import annotations

import logging

from blinker import Namespace
from flask import current_app

log = logging.getLogger(__name__)

_signals = Namespace()
# agent_id, offer_id, state ("pending" when made; its end otherwise)
offer_changed = _signals.signal("offer-changed")
# agent_id, available
switch_changed = _signals.signal("switch-changed")


def send(signal: object, **values: object) -> None:
    try:
        signal.send(current_app._get_current_object(), **values)  # type: ignore[attr-defined]
    except Exception:  # a listener's trouble is not the roulette's
        log.exception("a listener of %s failed", getattr(signal, "name", signal))
