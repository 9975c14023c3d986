"""Every CSV the portal writes holds cells a spreadsheet shows as text and
never runs as a formula (OWASP "CSV injection").

One rule for every writer (the contact export, the import's error report):
a cell whose first character is = + - @ in any form a spreadsheet folds to
those signs (the full-width ＝ ＋ － ＠ that Japanese and Chinese input
methods type, the small ﹦ ﹢ ﹣ ﹫, all of which Unicode's compatibility
mapping takes to the ASCII sign), or is a tab or line break, gets a leading
apostrophe, which spreadsheets hide and read as "this is text".
"""

from __future__ import annotations

import unicodedata

_FORMULA_SIGNS = frozenset("=+-@")
_CELL_BREAKS = frozenset("\t\r\n")


def starts_a_formula(text: str) -> bool:
    """Whether a spreadsheet could read the cell `text` as a formula."""
    if not text:
        return False
    first = text[0]
    return first in _CELL_BREAKS or unicodedata.normalize("NFKC", first) in (
        _FORMULA_SIGNS
    )


def neutralise(value: object) -> str:
    """The cell as text (None: empty); one that could start a formula gets a
    leading apostrophe."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if starts_a_formula(text) else text
