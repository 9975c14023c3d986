"""Who has a live connection, shared by every process through Redis.

An agent is *online* when their "available" switch is on (AgentState, in the
database) and one of their sockets was heard from within GRACE_SECONDS. Each
socket refreshes its agent's mark every HEARTBEAT_SECONDS; a closed socket
simply stops refreshing, so a phone that drops its connection while switching
apps and reconnects within the grace period never looks offline.
"""

from __future__ import annotations

import time

from portal.redis_conn import get_redis

GRACE_SECONDS = 30
HEARTBEAT_SECONDS = 10


def _key(account_id: int) -> str:
    return f"roleta:presence:{account_id}"


def touch(account_id: int, user_id: int, at: float | None = None) -> None:
    """Mark the user's connection alive now."""
    get_redis().zadd(_key(account_id), {str(user_id): at or time.time()})


def drop(account_id: int, user_id: int) -> None:
    """Forget the user's connection at once (suspension, sign-out)."""
    get_redis().zrem(_key(account_id), str(user_id))


def live_user_ids(account_id: int, at: float | None = None) -> set[int]:
    """Users with a connection heard from within the grace period."""
    now = at or time.time()
    members = get_redis().zrangebyscore(_key(account_id), now - GRACE_SECONDS, "+inf")
    return {int(m) for m in members}


def is_live(account_id: int, user_id: int, at: float | None = None) -> bool:
    score = get_redis().zscore(_key(account_id), str(user_id))
    return score is not None and score >= (at or time.time()) - GRACE_SECONDS


def prune(account_id: int, at: float | None = None) -> int:
    """Drop marks older than the grace period; returns how many."""
    now = at or time.time()
    return get_redis().zremrangebyscore(_key(account_id), "-inf", now - GRACE_SECONDS)
