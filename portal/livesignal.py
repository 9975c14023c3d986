"""A nudge over the websocket that makes an open page fetch one of its own
fragments again, with the viewer's own session, language and clock.

The server never renders someone's fragment in a job (it would need their
request); it publishes this small element, swapped out of band into a slot
the page keeps for it, and the browser asks for the fragment. A page
without the slot ignores it. The URLs and ids are ours, never a user's text.
"""

from __future__ import annotations

from collections.abc import Iterable

from portal.realtime import hub

_SIGNAL = (
    '<div id="{slot}" hx-swap-oob="true" hidden hx-get="{url}" '
    'hx-trigger="load{delay}" hx-target="#{target}" hx-swap="outerHTML"></div>'
)


def signal_html(slot: str, url: str, target: str, delay_ms: int = 0) -> str:
    delay = f" delay:{delay_ms}ms" if delay_ms else ""
    return _SIGNAL.format(slot=slot, url=url, target=target, delay=delay)


def push(user_ids: Iterable[int | None], html: str) -> None:
    for user_id in {uid for uid in user_ids if uid}:
        hub.publish(user_id, html)
