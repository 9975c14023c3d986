"""The choice of an agent for a lead, from facts already read.

The promise: the same pool, department, owner and declines give the same
plan, every time, and nothing here reads or writes anything (no database,
no Redis, no Flask), so the rule can be read and tested on its own. The
contact's owner comes first when eligible; otherwise the agent who has
waited longest since their last offer (or since switching on).

Bottom of the roulette's stack: every other module may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol


class Skip:
    """Why an agent was (not) chosen; stored in the offer's candidate list."""

    CHOSEN = "chosen"
    OFFLINE = "offline"
    PAUSED = "paused"
    BUSY = "busy"
    CAPACITY = "capacity"
    HOURS = "hours"
    DECLINED = "declined"


# Eligible but not their turn: they wait behind the chosen one.
LATER = "later"


@dataclass
class Agent:
    id: int
    name: str
    available: bool
    waiting_since: datetime
    is_owner: bool = False
    reason: str = ""
    language: str | None = None


@dataclass
class Plan:
    """One evaluation of a lead: everyone considered, and whom to ask."""

    agents: list[Agent]
    chosen: Agent | None

    @cached_property
    def candidates(self) -> list[dict]:
        return [
            {
                "id": a.id,
                "name": a.name,
                "reason": a.reason,
                "owner": a.is_owner,
            }
            for a in self.agents
        ]

    def any(self, reason: str) -> bool:
        return any(a.reason == reason for a in self.agents)

    def next_choice(self) -> Agent | None:
        """A rival routing took the chosen agent meanwhile: mark them busy and
        choose the next eligible one in turn order, without planning again."""
        if self.chosen is not None:
            self.chosen.reason = Skip.BUSY
        waiting = [a for a in self.agents if a.reason == LATER]
        self.chosen = waiting[0] if waiting else None
        if self.chosen is not None:
            self.chosen.reason = Skip.CHOSEN
        self.__dict__.pop("candidates", None)
        return self.chosen


@dataclass
class Roster:
    """Who may receive an account's leads and where they sit: the half of the
    pool that changes slowly, which the router keeps between passes."""

    agents: dict[int, Agent]
    # Department id -> its receivers; None when read for one department
    # (every agent read belongs).
    members: dict[int, set[int]] | None
    department_names: dict[int, str]
    # (department id, working hours, time zone) of departments with hours.
    hours: list[tuple[int, dict, str]]


@dataclass
class Pool:
    """The routing state of one account, read once and used for many leads:
    its receivers, who is live, busy or at the cap, and which departments
    are closed now. `free` (live, switched on, holding no offer, below the
    cap) follows every offer made from it."""

    capacity: int
    roster: Roster
    live: set[int]
    busy: set[int]
    loads: dict[int, int]
    closed: set[int]
    free: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.free = {agent_id for agent_id in self.agents if self.is_free(agent_id)}

    @property
    def agents(self) -> dict[int, Agent]:
        return self.roster.agents

    def candidates(self, department_id: int | None, owner_id: int | None) -> set[int]:
        """Who could take a lead of this department: its receivers, plus the
        contact's owner wherever they sit (owner priority)."""
        members = self.roster.members
        if department_id is None or members is None:
            ids = set(self.agents)
        else:
            ids = set(members.get(department_id, ()))
        if owner_id in self.agents:
            ids.add(owner_id)
        return ids

    def is_free(self, agent_id: int) -> bool:
        """Live, switched on, holding no offer and below the cap."""
        agent = self.agents[agent_id]
        return (
            agent.available
            and agent_id in self.live
            and agent_id not in self.busy
            and not (self.capacity and self.loads.get(agent_id, 0) >= self.capacity)
        )

    def take(self, agent_id: int, now: datetime) -> None:
        """The agent was just offered a lead: busy, and last in turn."""
        self.taken_elsewhere(agent_id)
        self.agents[agent_id].waiting_since = now

    def taken_elsewhere(self, agent_id: int) -> None:
        """Another routing gave the agent an offer: busy from now on."""
        self.busy.add(agent_id)
        self.free.discard(agent_id)


def evaluate(
    pool: Pool,
    department_id: int | None,
    owner_id: int | None,
    declined: set[int] | frozenset[int],
) -> Plan:
    """Every candidate for one lead, with why they are (not) asked; picks
    the contact's owner when eligible, else the longest wait."""
    agents = []
    open_now = department_id is None or department_id not in pool.closed
    for agent_id in pool.candidates(department_id, owner_id):
        row = pool.agents[agent_id]
        agent = Agent(
            id=agent_id,
            name=row.name,
            available=row.available,
            waiting_since=row.waiting_since,
            is_owner=agent_id == owner_id,
        )
        if agent_id not in pool.live:
            agent.reason = Skip.OFFLINE
        elif not agent.available:
            agent.reason = Skip.PAUSED
        elif not open_now:
            agent.reason = Skip.HOURS
        elif agent_id in declined:
            agent.reason = Skip.DECLINED
        elif agent_id in pool.busy:
            agent.reason = Skip.BUSY
        elif pool.capacity and pool.loads.get(agent_id, 0) >= pool.capacity:
            agent.reason = Skip.CAPACITY
        agents.append(agent)
    eligible = [a for a in agents if not a.reason]
    chosen = None
    owners = [a for a in eligible if a.is_owner]
    if owners:
        chosen = owners[0]
    elif eligible:
        chosen = min(eligible, key=lambda a: (a.waiting_since, a.id))
    if chosen is not None:
        chosen.reason = Skip.CHOSEN
    for agent in eligible:
        if agent is not chosen:
            agent.reason = LATER
    agents.sort(key=lambda a: (not a.is_owner, a.waiting_since, a.id))
    return Plan(agents=agents, chosen=chosen)


def declined_by(
    rows: Iterable[tuple[int, int]], lead_round: int, exhausted: bool
) -> set[int]:
    """Agents who passed on the lead this round (after the last round: ever),
    from its ended offers' (agent id, round)."""
    return {agent for agent, round_ in rows if exhausted or round_ == lead_round}


class RoundOf(Protocol):
    """What `may_start_next_round` needs of a lead (a row or a Lead)."""

    exhausted_at: datetime | None


def may_start_next_round(lead: RoundOf, lead_plan: Plan) -> bool:
    """Whether the lead's round is over: every free candidate declined it
    (and nobody who has not declined is about to be free), before the last
    round was declined."""
    return (
        lead.exhausted_at is None
        and lead_plan.any(Skip.DECLINED)
        and not lead_plan.any(Skip.BUSY)
    )
