"""Task jobs: tell who a task is for, and when it falls due. Safe to run
twice (portal.tasks.notify dedupes every notification)."""

from __future__ import annotations

from jobs import app_context
from portal.tasks import notify


def notify_given(task_id: int) -> int:
    with app_context():
        return notify.notify_given(task_id)


def notify_due(task_id: int) -> int:
    with app_context():
        return notify.notify_due(task_id)
