"""A person's clock (portal.localtime): reading a form's local time, the
bounds of their day, around clock changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from portal.localtime import day_bounds, local_input, parse_local, valid_zone

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-07-01T09:30", datetime(2026, 7, 1, 7, 30, tzinfo=UTC)),  # summer
        ("2026-01-15T09:30", datetime(2026, 1, 15, 8, 30, tzinfo=UTC)),  # winter
        (" 2026-01-15T09:30 ", datetime(2026, 1, 15, 8, 30, tzinfo=UTC)),
        ("2026-01-15 09:30", None),
        ("2026-02-30T09:30", None),
        ("", None),
        ("tomorrow", None),
    ],
)
def test_parse_local(value, expected):
    assert parse_local(value, BERLIN) == expected


def test_local_input_round_trips():
    moment = datetime(2026, 7, 1, 7, 30, tzinfo=UTC)
    assert local_input(moment, BERLIN) == "2026-07-01T09:30"
    assert parse_local(local_input(moment, BERLIN), BERLIN) == moment
    assert local_input(None, BERLIN) == ""


def test_a_day_with_a_clock_change_has_23_hours():
    start, end = day_bounds(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), BERLIN)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_valid_zone():
    assert valid_zone("America/Sao_Paulo") and valid_zone("UTC")
    assert not valid_zone("") and not valid_zone("Mars/Base") and not valid_zone("../x")
