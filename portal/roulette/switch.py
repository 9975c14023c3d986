"""The agent's "available" switch, and taking an agent offline.

The promise: the switch is saved first and stands whatever follows. Then,
through Redis, the tabs and routers hear of it: switched on, waiting leads
come to the agent; switched off by hand, their pending offer passes to the
next agent. A Redis outage after the commit is logged, never raised: the
tabs get the switch again when their socket reconnects, and the sweep
routes what a wake-up missed. A suspended or deleted agent is offline at
once: switch off, presence dropped, offer withdrawn, sockets closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis import RedisError
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import AgentState, User
from portal.models.base import utcnow
from portal.realtime import presence
from portal.realtime.hub import publish_close
from portal.roulette import push, signals
from portal.roulette.endings import cancel_pending
from portal.roulette.pool import roster_changed
from portal.roulette.routing import route_soon

log = logging.getLogger(__name__)


def agent_state(user: User) -> AgentState:
    """The agent's routing state, created (switched off) on first use."""
    state = db.session.get(AgentState, user.id)
    if state is None:
        state = AgentState(user_id=user.id, account_id=user.account_id)
        db.session.add(state)
        try:
            db.session.flush()
        except IntegrityError:
            # Created meanwhile by the user's other tab.
            db.session.rollback()
            state = db.session.get(AgentState, user.id)
    return state


def is_online(user: User) -> bool:
    """Switched on with a live socket. False while Redis, which knows the
    sockets, cannot be asked: no offer reaches the agent then anyway."""
    state = db.session.get(AgentState, user.id)
    if not (state and state.available):
        return False
    try:
        return presence.is_live(user.account_id, user.id)
    except RedisError:
        log.warning("presence of user %s unknown: Redis unreachable", user.id)
        return False


def switch_context(user: User) -> dict[str, bool]:
    """What the presence switch shows: the switch, and whether it is live."""
    state = agent_state(user)
    return {"available": state.available, "online": is_online(user)}


def _push_switch(user_id: int, automatic: bool) -> None:
    user = db.session.get(User, user_id)
    if user is not None:
        push.presence(user, automatic=automatic, **switch_context(user))


def _despite_redis(step: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a step that follows a commit; a Redis outage is logged, not
    raised: what was committed stands."""
    try:
        step(*args, **kwargs)
    except RedisError:
        log.warning("%s after a commit failed: Redis unreachable", step.__name__)


def set_available(user: User, available: bool, automatic: bool = False) -> AgentState:
    """The agent's "available" switch. On: waiting leads come to them. Off:
    their pending offer passes to the next agent (not when `automatic`:
    the pause after missed offers, whose offer already ended). Commits."""
    state = agent_state(user)
    changed = state.available != available
    state.available = available
    if changed:
        state.available_changed_at = utcnow()
    db.session.commit()
    if changed:
        roster_changed()
        _despite_redis(_push_switch, user.id, automatic)
        signals.send(signals.switch_changed, agent_id=user.id, available=available)
    if available:
        _despite_redis(route_soon, agent_id=user.id)
    elif not automatic:
        _despite_redis(cancel_pending, user.id)
    return state


def take_offline(user: User) -> None:
    """Suspension or deletion: offline at once, pending offer passed on."""
    state = db.session.get(AgentState, user.id)
    if state is not None and state.available:
        state.available = False
        state.available_changed_at = utcnow()
        db.session.commit()
        roster_changed()
    presence.drop(user.account_id, user.id)
    cancel_pending(user.id)
    publish_close(user.id)
