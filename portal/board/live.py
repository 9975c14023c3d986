"""The board follows the roulette: after an offer is made or ends, or an
agent's switch changes, the account's supervisors with a live connection
are nudged (portal.livesignal) to fetch their board again.

A flood of leads must not become a flood of board reads: one nudge per
account per DEBOUNCE_MS at most, and the browser waits a little longer
than that before fetching, so a fetch sees every change of its window.
"""

from __future__ import annotations

from sqlalchemy import select

from portal import livesignal
from portal.extensions import db
from portal.models import RolePermission, User, UserStatus
from portal.realtime import presence
from portal.redis_conn import get_redis

DEBOUNCE_MS = 500
PERMISSION = "dashboard.view"


def _supervisors(account_id: int, among: set[int]) -> list[int]:
    if not among:
        return []
    return list(
        db.session.scalars(
            select(User.id)
            .join(RolePermission, RolePermission.role_id == User.role_id)
            .where(
                User.account_id == account_id,
                User.status == UserStatus.ACTIVE,
                User.id.in_(among),
                RolePermission.permission == PERMISSION,
            )
        )
    )


def changed(account_id: int) -> None:
    """Something the board shows changed in this account."""
    if not get_redis().set(f"roleta:board:{account_id}", 1, nx=True, px=DEBOUNCE_MS):
        return  # a nudge is on its way and its fetch will see this too
    watching = _supervisors(account_id, presence.live_user_ids(account_id))
    html = livesignal.signal_html(
        "board-signal", "/roulette/board", "roulette-board", DEBOUNCE_MS + 100
    )
    livesignal.push(watching, html)


# An agent's account, kept per process (it never changes): the roulette's
# signals name the agent, and a flood of offers should not each cost a read.
_accounts: dict[int, int] = {}


def _account_of(agent_id: int) -> int | None:
    if agent_id not in _accounts:
        account_id = db.session.scalar(
            select(User.account_id).where(User.id == agent_id)
        )
        if account_id is None:
            return None
        _accounts[agent_id] = account_id
    return _accounts[agent_id]


def on_roulette_changed(sender: object, *, agent_id: int, **_kw: object) -> None:
    """The roulette's `offer_changed` and `switch_changed`."""
    account_id = _account_of(agent_id)
    if account_id is not None:
        changed(account_id)
