"""Enqueueing background jobs (RQ) by dotted path.

`portal` never imports `jobs`; it names them. Call `enqueue` only after the
transaction that the job reads has committed, or the worker may not see it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from rq import Queue
from rq.job import Job

from portal.redis_conn import get_redis


def get_queue() -> Queue:
    return Queue(current_app.config["RQ_QUEUE"], connection=get_redis())


def enqueue(func_path: str, *args: Any, **kwargs: Any) -> Job:
    """Queue `func_path(*args)`; jobs take ids and plain values only."""
    return get_queue().enqueue(func_path, *args, **kwargs)


def enqueue_in(delay: timedelta, func_path: str, *args: Any, **kwargs: Any) -> Job:
    return get_queue().enqueue_in(delay, func_path, *args, **kwargs)


def enqueue_at(when: datetime, func_path: str, *args: Any, **kwargs: Any) -> Job:
    """Run `func_path(*args)` at `when` (rq's scheduler, polled each second)."""
    return get_queue().enqueue_at(when, func_path, *args, **kwargs)
