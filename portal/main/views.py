"""The home page, made for each role (portal.home.service), and its blocks,
each fetched again on its own when the server signals a change."""

from __future__ import annotations

from flask import Blueprint, abort
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_login import current_user, login_required

from portal.home import live, service
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("main", __name__)

TEMPLATE = "main/home.html"


@bp.context_processor
def dates() -> dict:
    return {"when": lambda moment: format_datetime(moment, "short") if moment else ""}


def _block_context(name: str) -> dict:
    if name == "attention":
        return {"attention": service.attention(current_user, current_account())}
    if name == "tasks":
        return {"tasks": service.due_tasks(current_user)}
    if name == "mentions":
        return {"mentions": service.unread_mentions(current_user)}
    if name == "queue":
        return {"counts": service.queue_counts(current_user, current_account())}
    abort(404)


def _blocks_of(kind: str) -> tuple[str, ...]:
    return {
        service.AGENT: ("attention", "tasks", "mentions"),
        service.SUPERVISOR: ("queue", "tasks", "mentions"),
        service.RECEPTION: ("tasks",),
        service.VIEWER: (),
    }[kind]


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    kind = service.kind_of_home(current_user)
    context: dict = {"kind": kind, "blocks": _blocks_of(kind)}
    for name in context["blocks"]:
        context.update(_block_context(name))
    return render(TEMPLATE, **context)


@bp.get("/home/<name>")
@login_required
def block(name: str) -> ResponseReturnValue:
    """One block of the home, for its live refresh; only the blocks of the
    viewer's own home (another role's block is not theirs: 404)."""
    if name not in live.BLOCKS:
        abort(404)
    if name not in _blocks_of(service.kind_of_home(current_user)):
        abort(404)
    return render(TEMPLATE, name, **_block_context(name))
