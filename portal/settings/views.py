"""The account settings page: process mode, roulette, store flow per unit."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.access import require
from portal.errors import ValidationError
from portal.models import Account, ProcessMode
from portal.org.service import list_units
from portal.rendering import render
from portal.settings.service import (
    SETTINGS,
    SETTINGS_BY_KEY,
    current_account,
    settings_dict,
    update_settings,
)

bp = Blueprint("settings", __name__)

TEMPLATE = "settings/index.html"

PROCESS_MODES = (
    (
        int(ProcessMode.ATTENDANT),
        _l("Process 1"),
        _l("A lead goes to an attendant, who works it to the end."),
    ),
    (
        int(ProcessMode.APPOINTMENT),
        _l("Process 2"),
        _l(
            "The attendant qualifies the lead and books an appointment with a "
            "seller of a unit; after the seller's answer the attendant finishes it."
        ),
    ),
    (
        int(ProcessMode.HYBRID),
        _l("Process 3 (hybrid)"),
        _l("Per user, you choose who receives web leads and who enters store leads."),
    ),
)


# The roulette's whole-number settings, in the order an admin thinks of them.
ROULETTE_NUMBERS = (
    "roulette.offer_timeout",
    "roulette.rounds",
    "roulette.capacity",
    "roulette.queue_alert_minutes",
)


def _context(account: Account, **context: object) -> dict:
    context.setdefault("values", settings_dict(account))
    context.setdefault("errors", {})
    return {
        "modes": PROCESS_MODES,
        "labels": {s.key: s.label for s in SETTINGS},
        "numbers": {s.key: s for s in SETTINGS if s.low is not None},
        "roulette_numbers": ROULETTE_NUMBERS,
        "process_mode": account.process_mode,
        "units": [summary.unit for summary in list_units(account)],
        **context,
    }


def _submitted() -> dict[str, str]:
    """The settings the form sent. A checkbox sends a hidden "false" before
    its "true", so the last value is what the admin chose."""
    return {
        key: request.form.getlist(key)[-1]
        for key in SETTINGS_BY_KEY
        if request.form.getlist(key)
    }


@bp.get("/settings")
@require("settings.manage")
def index() -> ResponseReturnValue:
    return render(TEMPLATE, **_context(current_account()))


@bp.post("/settings")
@require("settings.manage")
def save() -> ResponseReturnValue:
    account = current_account()
    submitted = _submitted()
    try:
        update_settings(account, submitted)
    except ValidationError as exc:
        # Show what was typed, so the admin can correct it in place.
        values = {**settings_dict(account), **submitted}
        context = _context(account, values=values, errors=exc.fields)
        block = "settings_form" if request.htmx else None
        return render(TEMPLATE, block, **context), 422
    message = _("Settings saved.")
    if not request.htmx:
        flash(message, "success")
        return redirect(url_for("settings.index"), code=303)
    return render(TEMPLATE, "saved", **_context(account, message=message))
