"""Render a whole page or one named block of the same template, and tell
which of the two a request wants.

A page's htmx refresh is a block of the page's own template, so the page and
its fragments can never drift apart (STYLE habit 3).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request


def render_block(template_name: str, block_name: str, **context: Any) -> str:
    """Render only `block_name` of `template_name` with the usual context."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.update_template_context(context)
    template = app.jinja_env.get_or_select_template(template_name)
    block = template.blocks[block_name]
    return "".join(block(template.new_context(context)))


def render(template_name: str, block: str | None = None, **context: Any) -> str:
    """The whole page, or just `block` when one is named."""
    if block:
        return render_block(template_name, block, **context)
    return render_template(template_name, **context)


def fragment_wanted() -> bool:
    """An htmx swap wants a fragment; a boosted or history load wants the page."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
