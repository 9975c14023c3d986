"""GET /dashboard?from=YYYY-MM-DD&to=YYYY-MM-DD[&team=<id>][&unit=<id>]
(dashboard.view): per agent of the viewer's scope, figures that each link
to the contact list of exactly the contacts they count."""

from __future__ import annotations

from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.auth.access import require
from portal.dashboard import service
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import Team, Unit
from portal.models.base import utcnow
from portal.rendering import fragment_wanted, render
from portal.reports import periods
from portal.settings.service import current_account

bp = Blueprint("dashboard", __name__)


@bp.context_processor
def formats() -> dict:
    return {"duration": periods.duration_text}


TEMPLATE = "dashboard/index.html"
# The contact list reads its date filters as whole days in UTC; the
# dashboard's range is read the same way, or the counts would not agree.
UTC_ZONE = ZoneInfo("UTC")


def _choice(model: type, raw: str, field: str, errors: dict) -> int | None:
    if not raw:
        return None
    row = db.session.get(model, int(raw)) if raw.isdigit() and len(raw) < 10 else None
    if row is None or row.account_id != current_account().id:
        errors[field] = _("Pick from the list.")
        return None
    return row.id


@bp.get("/dashboard")
@require("dashboard.view")
def index() -> ResponseReturnValue:
    account = current_account()
    errors: dict[str, str] = {}
    period = None
    try:
        period = periods.period_from(request.args, UTC_ZONE, utcnow().date())
    except ValidationError as exc:
        errors.update(exc.fields)
    team_id = _choice(Team, request.args.get("team", ""), "team", errors)
    unit_id = _choice(Unit, request.args.get("unit", ""), "unit", errors)
    rows = []
    responses = []
    links: dict[str, str] = {}
    bucket_links: list[str] = []
    if period and not errors:
        rows = service.rows(current_user, account, period, team_id, unit_id)
        responses = service.first_responses(
            current_user, account, period, team_id, unit_id
        )
        for metric in service.METRICS:
            args = service.metric_filters(metric.key, account, period).query_args()
            links[metric.key] = urlencode(args)
        links["answered"] = urlencode(
            service.response_filters(account, period).query_args()
        )
        bucket_links = [
            urlencode(service.response_filters(account, period, low, high).query_args())
            for low, high, _label in service.RESPONSE_BUCKETS
        ]
    context = {
        "rows": rows,
        "metrics": service.METRICS,
        "links": links,
        "responses": responses,
        "buckets": [label for _low, _high, label in service.RESPONSE_BUCKETS],
        "bucket_links": bucket_links,
        "contacts_url": url_for("contacts.index"),
        "period": period,
        "errors": errors,
        "args": {k: request.args.get(k, "") for k in ("from", "to", "team", "unit")},
        "teams": db.session.scalars(
            select(Team).where(Team.account_id == account.id).order_by(Team.name)
        ).all(),
        "units": db.session.scalars(
            select(Unit).where(Unit.account_id == account.id).order_by(Unit.name)
        ).all(),
    }
    status = 422 if errors else 200
    if fragment_wanted():
        return render(TEMPLATE, "figures", **context), status
    return render(TEMPLATE, **context), status
