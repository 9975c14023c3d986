"""Home blocks that refresh themselves when something changes: each
listener below sends the open home pages concerned a nudge
(portal.livesignal) to fetch that block again. Nothing polls.
"""

from __future__ import annotations

from collections.abc import Iterable

from portal import livesignal

BLOCKS = ("attention", "tasks", "queue", "mentions")


def refresh(user_ids: Iterable[int | None], block: str) -> None:
    """Ask every open home page of these users to fetch `block` again."""
    if block not in BLOCKS:
        raise ValueError(block)
    html = livesignal.signal_html(
        f"home-{block}-signal", f"/home/{block}", f"home-{block}"
    )
    livesignal.push(user_ids, html)


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
