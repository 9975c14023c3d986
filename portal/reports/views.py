"""The ranking screen (/ranking) and marketing's report by origin
(/reports/origins, and .csv). Aggregates only; see portal.reports."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from flask_babel import format_date, format_percent
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.access import require
from portal.csvsafe import neutralise
from portal.errors import ValidationError
from portal.localtime import zone_of
from portal.models.base import utcnow
from portal.rendering import fragment_wanted, render
from portal.reports import periods, service
from portal.reports.periods import duration_text
from portal.settings.service import current_account

bp = Blueprint("reports", __name__)

RANKING_REFRESH_SECONDS = 30


@bp.context_processor
def formats() -> dict:
    return {
        "day": lambda value: format_date(value, "medium"),
        "percent": lambda value: format_percent(value, "#0.0%"),
        "duration": duration_text,
    }


def _period(args: object) -> tuple[periods.Period | None, dict[str, str]]:
    zone = zone_of(current_user)
    today = utcnow().astimezone(zone).date()
    try:
        return periods.period_from(args, zone, today), {}
    except ValidationError as exc:
        return None, exc.fields


@bp.get("/ranking")
@require("ranking.view")
def ranking() -> ResponseReturnValue:
    period, errors = _period(request.args)
    rows = service.ranking(current_account().id, period) if period else []
    context = {
        "rows": rows,
        "period": period,
        "errors": errors,
        "args": {
            "from": request.args.get("from", ""),
            "to": request.args.get("to", ""),
        },
        "refresh_seconds": RANKING_REFRESH_SECONDS,
    }
    status = 422 if errors else 200
    if fragment_wanted():
        return render("reports/ranking.html", "board", **context), status
    return render("reports/ranking.html", **context), status


def _origin_choices(args: object) -> tuple[dict[str, str], dict[str, str]]:
    get = args.get  # type: ignore[attr-defined]
    chosen = {"group": get("group") or "origin", "interval": get("interval") or "day"}
    errors = {}
    if chosen["group"] not in service.GROUPS:
        errors["group"] = _("Pick from the list.")
    if chosen["interval"] not in service.INTERVALS:
        errors["interval"] = _("Pick from the list.")
    return chosen, errors


def _origins_or_errors() -> tuple[dict, dict[str, str]]:
    period, errors = _period(request.args)
    chosen, choice_errors = _origin_choices(request.args)
    errors.update(choice_errors)
    report = None
    if period and not errors:
        report = service.origins(
            current_account().id, period, chosen["group"], chosen["interval"]
        )
    return {"period": period, "chosen": chosen, "report": report}, errors


@bp.get("/reports/origins")
@require("reports.view")
def origins() -> ResponseReturnValue:
    context, errors = _origins_or_errors()
    context.update(
        errors=errors,
        groups=service.GROUPS,
        intervals=service.INTERVALS,
        args={
            "from": request.args.get("from", ""),
            "to": request.args.get("to", ""),
        },
    )
    status = 422 if errors else 200
    if fragment_wanted():
        return render("reports/origins.html", "report", **context), status
    return render("reports/origins.html", **context), status


@bp.get("/reports/origins.csv")
@require("reports.view")
def origins_csv() -> ResponseReturnValue:
    context, errors = _origins_or_errors()
    if errors:
        field, message = next(iter(errors.items()))
        return Response(f"{field}: {message}\n", 422, mimetype="text/plain")
    report = context["report"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            _("Period"),
            str(service.GROUPS[context["chosen"]["group"]]),
            _("Leads"),
            _("Won"),
            _("Conversion"),
        ]
    )
    for row in report.rows:
        writer.writerow(
            [
                row.bucket.isoformat(),
                neutralise(row.group),
                row.leads,
                row.won,
                f"{row.conversion:.4f}",
            ]
        )
    name = "origins-{from}-{to}.csv".format(**context["period"].query_args())
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
