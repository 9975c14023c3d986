"""The live roulette board (/roulette/board, dashboard.view)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue
from flask_babel import format_time
from flask_login import current_user

from portal.auth.access import require
from portal.board import service
from portal.models.roulette import DECLINE_REASONS
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account

bp = Blueprint("board", __name__)

TEMPLATE = "board/index.html"


@bp.context_processor
def formats() -> dict:
    def waited(since: object, now: object) -> int:
        return max(0, int((now - since).total_seconds()))  # type: ignore[operator]

    return {
        "clock": lambda moment: format_time(moment, "medium") if moment else "",
        "waited": waited,
        "decline_reasons": DECLINE_REASONS,
    }


@bp.get("/roulette/board")
@require("dashboard.view")
def index() -> ResponseReturnValue:
    context = {"board": service.board(current_user, current_account())}
    if fragment_wanted():
        return render(TEMPLATE, "board", **context)
    return render(TEMPLATE, **context)
