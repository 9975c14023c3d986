"""Ids from outside (URL, form, query string) are in range before any query.

Every id column is SQLAlchemy's `Integer`: 32 bits on PostgreSQL, which casts
its parameters (`%(id)s::INTEGER`) and fails on a larger one, and at most 64
bits on SQLite, whose driver cannot even bind a larger Python int. A number
past that range never names a row, so it is refused where it enters: as a
404 for a URL (the `int` converter below replaces Flask's for the whole app),
as None for a form or query value (the caller turns that into a field error).
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

# The range of PostgreSQL's `integer`, the narrower of the two databases.
MAX_ID = 2**31 - 1
# Enough digits for MAX_ID; a longer string is refused before int() reads it.
_MAX_DIGITS = len(str(MAX_ID))


def _digits_up_to(limit: int) -> str:
    """A pattern matching exactly the numbers 1..limit, without leading zeros.

    The range lives in the pattern, not only in `to_python`: Werkzeug answers a
    value its converter refuses with 405 when another method's rule has the
    same path, where a path that does not match at all is a 404 for every
    method."""
    top = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(top) - 2}}}" if len(top) > 1 else None
    same_length = [top]
    for i, digit in enumerate(top):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            rest = len(top) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            same_length.append(f"{top[:i]}[{lowest}-{int(digit) - 1}]{tail}")
    return "(?:" + "|".join(filter(None, [shorter, *same_length])) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` for ids: ASCII digits naming 1..MAX_ID, else no match (404).

    Werkzeug's own pattern is `\\d+`, which also matches other scripts' digits
    ("١٢") and any length: ids are ASCII digits within the columns' range."""

    regex = _digits_up_to(MAX_ID)

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def parse_id(raw: object) -> int | None:
    """The id in `raw`, an int or ASCII digits (surrounding spaces allowed)
    naming 1..MAX_ID; None for anything else: empty, not a number, out of range."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if 0 < raw <= MAX_ID else None
    if not isinstance(raw, str):
        return None
    digits = raw.strip()
    if not (0 < len(digits) <= _MAX_DIGITS and digits.isascii() and digits.isdigit()):
        return None
    value = int(digits)
    return value if 0 < value <= MAX_ID else None
