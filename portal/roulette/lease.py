"""Who routes: the router's Redis lease and its wake-up line.

The promise: at most one process holds the lease at a time (it lapses
LEASE_MS after its holder stops renewing it), and `wake()` answers True
only when some process holds it, so a caller told False routes by itself
and no lead waits on a router that is not there. Wake-ups carry nothing but
"look now"; they never pile up while nobody reads them.

Redis only: the routing below the router (`portal.roulette.routing`) wakes
it through here, and the router thread (`portal.roulette.router`) holds it.
"""

from __future__ import annotations

import redis

from portal.redis_conn import get_redis

LEASE = "roleta:router:lease"
WAKE = "roleta:router:wake"
LEASE_MS = 3000

# What a wake-up is about: a lead to place, or an agent who may take one.
FOR_LEAD = "lead"
FOR_AGENT = "agent"

# Wake the router if one holds the lease: one round trip, and no wake-up
# piles up in a list nobody reads.
_WAKE_SCRIPT = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('rpush', KEYS[2], ARGV[1])
  redis.call('ltrim', KEYS[2], 0, 63)
  return 1
end
return 0
"""

# Take the lease when free, or renew it when it is ours.
_HOLD_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def wake(about: str = FOR_AGENT) -> bool:
    """Ask the running router to route now. False when no router runs: the
    caller must route by itself. `about` FOR_LEAD (only new or returned
    leads, no agent freed) lets a router that just saw nobody free wait for
    its next look instead of reading the queue again for nothing."""
    client = get_redis()
    return bool(client.eval(_WAKE_SCRIPT, 2, LEASE, WAKE, about))


def running() -> bool:
    """Whether some process holds the router's lease."""
    return bool(get_redis().exists(LEASE))


def hold(client: redis.Redis, token: str) -> bool:
    """Take the lease for `token`, or renew it if `token` holds it."""
    return bool(client.eval(_HOLD_SCRIPT, 1, LEASE, token, LEASE_MS))


def release(client: redis.Redis, token: str) -> None:
    """Give the lease up if `token` holds it."""
    client.eval(_RELEASE_SCRIPT, 1, LEASE, token)
