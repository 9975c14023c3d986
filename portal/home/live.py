"""Home blocks that refresh themselves when something changes.

The server does not render someone's block in a job (it would need their
session, language and clock); it pushes a small signal over the websocket,
swapped out of band into the home page, that makes the browser fetch the
block again with its own session. A page without that block ignores it.
Nothing polls.
"""

from __future__ import annotations

from collections.abc import Iterable

from portal.realtime import hub

BLOCKS = ("attention", "tasks", "queue", "mentions")
# Swapped out of band into the home page, it fetches the block again. A
# plain string, not a template: jobs send it too, with no request to build
# URLs from (the block names are ours, never a user's text).
_SIGNAL = (
    '<div id="home-{block}-signal" hx-swap-oob="true" hidden '
    'hx-get="/home/{block}" hx-trigger="load" '
    'hx-target="#home-{block}" hx-swap="outerHTML"></div>'
)


def refresh(user_ids: Iterable[int | None], block: str) -> None:
    """Ask every open home page of these users to fetch `block` again."""
    if block not in BLOCKS:
        raise ValueError(block)
    html = _SIGNAL.format(block=block)
    for user_id in {uid for uid in user_ids if uid}:
        hub.publish(user_id, html)


def on_owner_changed(sender: object, *, owners: dict[int, int], **_kw: object) -> None:
    """contacts' `owner_changed`: the new owners' "needs you" lists moved."""
    refresh(owners.values(), "attention")


def on_tasks_changed(sender: object, *, user_ids: set[int], **_kw: object) -> None:
    """tasks' `tasks_changed`: these people's "tasks for today" moved."""
    refresh(user_ids, "tasks")


def on_notifications_changed(
    sender: object, *, user_ids: set[int], **_kw: object
) -> None:
    """notifications' `notifications_changed`: the unread mentions moved."""
    refresh(user_ids, "mentions")
