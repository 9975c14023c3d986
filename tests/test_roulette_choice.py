"""The choice of an agent, on facts built by hand: no database, no Redis."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal.roulette import choice
from portal.roulette.choice import (
    LATER,
    Agent,
    Plan,
    Pool,
    Roster,
    Skip,
    declined_by,
    evaluate,
    may_start_next_round,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SALES, SUPPORT = 1, 2


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Replaces the suite's wipe: the choice touches no database or Redis."""


def make_pool(
    waits: dict[int, int],
    *,
    live: set[int] | None = None,
    paused: set[int] = frozenset(),
    busy: set[int] = frozenset(),
    loads: dict[int, int] | None = None,
    capacity: int = 0,
    closed: set[int] = frozenset(),
    members: dict[int, set[int]] | None = None,
) -> Pool:
    """Agents 1..n, each waiting since T0 + `waits[id]` minutes."""
    agents = {
        agent_id: Agent(
            id=agent_id,
            name=f"Agent {agent_id}",
            available=agent_id not in paused,
            waiting_since=T0 + timedelta(minutes=minutes),
        )
        for agent_id, minutes in waits.items()
    }
    return Pool(
        capacity=capacity,
        roster=Roster(agents=agents, members=members, department_names={}, hours=[]),
        live=set(waits) if live is None else live,
        busy=set(busy),
        loads=loads or {},
        closed=set(closed),
    )


def reasons(plan: Plan) -> dict[int, str]:
    return {a.id: a.reason for a in plan.agents}


def test_the_longest_wait_is_chosen_and_the_others_wait_later() -> None:
    pool = make_pool({1: 5, 2: 1, 3: 3})

    plan = evaluate(pool, None, None, set())

    assert plan.chosen.id == 2
    assert reasons(plan) == {1: LATER, 2: Skip.CHOSEN, 3: LATER}
    assert [a.id for a in plan.agents] == [2, 3, 1]  # turn order


def test_equal_waits_go_to_the_lower_id() -> None:
    plan = evaluate(make_pool({7: 0, 4: 0}), None, None, set())

    assert plan.chosen.id == 4


def test_the_contacts_owner_comes_first_when_eligible() -> None:
    pool = make_pool({1: 0, 2: 9})

    plan = evaluate(pool, None, owner_id=2, declined=set())

    assert plan.chosen.id == 2 and plan.chosen.is_owner
    assert plan.candidates[0] == {
        "id": 2,
        "name": "Agent 2",
        "reason": Skip.CHOSEN,
        "owner": True,
    }


def test_an_owner_who_cannot_take_it_leaves_it_to_the_turn() -> None:
    pool = make_pool({1: 0, 2: 9}, busy={2})

    plan = evaluate(pool, None, owner_id=2, declined=set())

    assert plan.chosen.id == 1
    assert reasons(plan)[2] == Skip.BUSY


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"live": set()}, Skip.OFFLINE),
        ({"paused": {1}}, Skip.PAUSED),
        ({"closed": {SALES}}, Skip.HOURS),
        ({"busy": {1}}, Skip.BUSY),
        ({"capacity": 2, "loads": {1: 2}}, Skip.CAPACITY),
    ],
)
def test_each_skip_reason(facts: dict, reason: str) -> None:
    pool = make_pool({1: 0}, **facts)

    plan = evaluate(pool, SALES, None, set())

    assert plan.chosen is None
    assert reasons(plan) == {1: reason}


def test_skip_reasons_name_the_first_that_applies() -> None:
    # Offline before paused, paused before closed hours, declined before busy.
    offline_paused = evaluate(
        make_pool({1: 0}, live=set(), paused={1}), None, None, {1}
    )
    assert reasons(offline_paused) == {1: Skip.OFFLINE}
    paused_closed = evaluate(
        make_pool({1: 0}, paused={1}, closed={SALES}), SALES, None, set()
    )
    assert reasons(paused_closed) == {1: Skip.PAUSED}
    declined_busy = evaluate(make_pool({1: 0}, busy={1}), None, None, {1})
    assert reasons(declined_busy) == {1: Skip.DECLINED}


def test_below_the_cap_is_eligible_and_no_cap_means_none() -> None:
    assert evaluate(
        make_pool({1: 0}, capacity=2, loads={1: 1}), None, None, set()
    ).chosen
    assert evaluate(make_pool({1: 0}, loads={1: 50}), None, None, set()).chosen


def test_a_department_offers_to_its_members_and_the_owner() -> None:
    pool = make_pool({1: 0, 2: 0, 3: 0}, members={SALES: {1}, SUPPORT: {2}})

    assert pool.candidates(SALES, None) == {1}
    assert pool.candidates(SALES, 3) == {1, 3}
    assert pool.candidates(None, None) == {1, 2, 3}
    assert pool.candidates(SALES, 99) == {1}  # an owner who cannot receive


def test_next_choice_passes_to_the_next_in_turn() -> None:
    plan = evaluate(make_pool({1: 0, 2: 1, 3: 2}), None, None, set())
    assert plan.candidates[0]["reason"] == Skip.CHOSEN

    assert plan.next_choice().id == 2
    assert reasons(plan) == {1: Skip.BUSY, 2: Skip.CHOSEN, 3: LATER}
    assert [c["reason"] for c in plan.candidates] == [
        Skip.BUSY,
        Skip.CHOSEN,
        LATER,
    ]
    assert plan.next_choice().id == 3
    assert plan.next_choice() is None
    assert set(reasons(plan).values()) == {Skip.BUSY}


def test_the_pool_follows_the_offers_made_from_it() -> None:
    pool = make_pool({1: 0, 2: 1, 3: 2}, busy={3})
    assert pool.free == {1, 2}

    pool.take(1, T0 + timedelta(hours=1))
    pool.taken_elsewhere(2)

    assert pool.free == set() and pool.busy == {1, 2, 3}
    assert pool.agents[1].waiting_since == T0 + timedelta(hours=1)


def test_declines_count_in_their_round_or_ever_once_exhausted() -> None:
    rows = [(1, 1), (2, 2)]

    assert declined_by(rows, lead_round=2, exhausted=False) == {2}
    assert declined_by(rows, lead_round=2, exhausted=True) == {1, 2}


def test_a_round_is_over_when_every_free_candidate_declined() -> None:
    class Lead:
        exhausted_at = None

    everyone_declined = evaluate(make_pool({1: 0, 2: 0}), None, None, {1, 2})
    someone_busy = evaluate(make_pool({1: 0, 2: 0}, busy={2}), None, None, {1})
    nobody_declined = evaluate(make_pool({1: 0}, live=set()), None, None, set())

    assert may_start_next_round(Lead(), everyone_declined)
    assert not may_start_next_round(Lead(), someone_busy)
    assert not may_start_next_round(Lead(), nobody_declined)
    Lead.exhausted_at = T0
    assert not may_start_next_round(Lead(), everyone_declined)


def test_the_choice_imports_nothing_that_reads_or_writes() -> None:
    tree = ast.parse(Path(choice.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "collections",
        "dataclasses",
        "datetime",
        "functools",
        "typing",
    }
