"""A comment's text as HTML: escaped, with its line breaks and its http(s)
links, and nothing else a person typed ever becomes markup."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# A link runs to the next space or quote or angle bracket; punctuation that
# usually ends a sentence is not part of it ("see https://x.example/a.").
_LINK = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}»”’"


def _split_link(match: str) -> tuple[str, str]:
    """The link and the punctuation after it."""
    link = match.rstrip(_TRAILING)
    # A closing parenthesis the link itself opened stays in it (Wikipedia).
    while match[len(link) : len(link) + 1] == ")" and link.count("(") > link.count(")"):
        link += ")"
    return link, match[len(link) :]


def _line_html(line: str) -> Markup:
    """One line escaped, each http(s) URL in it a link."""
    parts: list[Markup] = []
    position = 0
    for found in _LINK.finditer(line):
        parts.append(escape(line[position : found.start()]))
        link, rest = _split_link(found.group(0))
        parts.append(
            Markup('<a href="{0}" rel="nofollow noopener noreferrer">{0}</a>').format(
                link
            )
        )
        parts.append(escape(rest))
        position = found.end()
    parts.append(escape(line[position:]))
    return Markup("").join(parts)


def comment_html(text: str | None) -> Markup:
    """`text` escaped, each line break a <br>, each http(s) URL a link that
    opens without handing this page to the target."""
    if not text:
        return Markup("")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(_line_html(line) for line in lines)


def excerpt(text: str | None, limit: int = 140) -> str:
    """The start of a comment on one line, for a notification."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
