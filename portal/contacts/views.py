"""The contacts blueprint and the contact list page (CONTRACT: GET
/contacts), with what every page of the blueprint renders with.

htmx requests get named blocks of contacts/index.html (the results, more
rows, the counts); the same URLs without htmx render the whole page. Every
query is scoped by scope.visible_clause through portal.contacts.pages and
quick_views. The list's actions (assign, bulk assign, saved views, export)
are list_actions.py's, the profile's are profile.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from babel import Locale
from babel.dates import (
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
from flask import (
    Blueprint,
    make_response,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_timedelta, get_locale, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from portal.auth.access import require
from portal.contacts import (
    cursor,
    list_filters,
    pages,
    query,
    quick_views,
    saved_filters,
    scope,
)
from portal.contacts.labels import ORIGIN_LABELS, STATUS_LABELS
from portal.contacts.list_filters import OPEN
from portal.errors import ValidationError
from portal.errors_http import error_response
from portal.extensions import db
from portal.models import (
    Account,
    Campaign,
    Department,
    Team,
    Unit,
    User,
)
from portal.navigation import CONTACT_VIEW_PERMISSIONS
from portal.rendering import fragment_wanted, render
from portal.settings.service import current_account

bp = Blueprint("contacts", __name__)

VIEW_PERMISSIONS = CONTACT_VIEW_PERMISSIONS
INDEX = "contacts/index.html"
MORE_ROW_ID = "contact-more"
# Every query-string key that can carry an error shown next to its field.
ERROR_FIELDS = (*list_filters.FILTER_KEYS, "limit")

SORT_LABELS = {
    "newest": _l("Newest first"),
    "oldest": _l("Oldest first"),
    "last_activity": _l("Latest activity first"),
}


@bp.context_processor
def list_context() -> dict:
    # Prepared once per response: a page renders these for 50-200 rows.
    return {
        "status_labels": {key: str(label) for key, label in STATUS_LABELS.items()},
        "origin_labels": {key: str(label) for key, label in ORIGIN_LABELS.items()},
        "when": _short_datetime_formatter(),
        "iso": _iso,
        "csrf": generate_csrf(),
        "contacts_url": url_for("contacts.index"),
        "row_text": {
            "name": _("Name"),
            "phone": _("Phone"),
            "email": _("Email"),
            "owner": _("Owner"),
            "status": _("Status"),
            "origin": _("Origin"),
            "department": _("Department"),
            "last_activity": _("Last activity"),
            "select": _("Select %(name)s"),
        },
    }


def _short_datetime_formatter() -> Callable[[datetime | None], str]:
    """Babel's "short" date and time in the viewer's language and timezone,
    with the pattern parsed once per response instead of once per row."""
    locale = get_locale() or Locale.parse("en")
    zone = get_timezone()
    pattern = parse_pattern(
        str(get_datetime_format("short", locale))
        .replace("'", "")
        .replace("{0}", get_time_format("short", locale).pattern)
        .replace("{1}", get_date_format("short", locale).pattern)
    )

    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        return pattern.apply(moment.astimezone(zone), locale)

    return when


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.isoformat()


def current_viewer() -> User:
    """The signed-in user as a plain User (not the proxy)."""
    return current_user._get_current_object()


def _wants_more_rows() -> bool:
    # htmx 4 names the target as "tag#id": the "Load more" row asks for rows.
    return request.headers.get("HX-Target", "").endswith("#" + MORE_ROW_ID)


def assignable_users(user: User) -> list[User]:
    """Whom `user` may pick in an assign control (themself when an agent):
    people in their scope who may own contacts (assignment.assign refuses the
    others, so they are not offered)."""
    people = db.session.scalars(
        select(User).where(scope.assignable_users_clause(user)).order_by(User.name)
    )
    return [
        person
        for person in people
        if person.can("contacts.view_own") or person.can("contacts.view_all")
    ]


# --- The list -----------------------------------------------------------------


def list_url(args: dict[str, str]) -> str:
    query = urlencode(args)
    return url_for("contacts.index") + ("?" + query if query else "")


def _choices(account: Account, viewer: User) -> dict:
    def rows(
        model: type[Department] | type[Campaign] | type[Team] | type[Unit],
    ) -> list:
        return list(
            db.session.scalars(
                select(model).where(model.account_id == account.id).order_by(model.name)
            )
        )

    may_assign = viewer.can("contacts.assign")
    choices = {
        "statuses": {OPEN: _l("Open (new, assigned, in progress)"), **STATUS_LABELS},
        "origins": ORIGIN_LABELS,
        "sorts": SORT_LABELS,
        "departments": rows(Department),
        "campaigns": rows(Campaign),
        "teams": rows(Team) if may_assign else [],
        "units": rows(Unit) if may_assign else [],
    }
    shown = set(ERROR_FIELDS) - {
        "department",
        "campaign",
        "team",
        "unit",
        "limit",
        *list_filters.DASHBOARD_KEYS,
    }
    if not may_assign:
        shown.discard("lead")  # the queue filter is offered to assigners only
    shown |= {
        name
        for name in ("department", "campaign", "team", "unit")
        if choices[name + "s"]
    }
    choices["unshown_fields"] = [name for name in ERROR_FIELDS if name not in shown]
    return choices


def _quick_links(account: Account, viewer: User) -> list[dict]:
    return [
        {"view": link.view, "label": link.label, "url": list_url(link.args)}
        for link in quick_views.quick_links(account, viewer)
    ]


def _waits(
    viewer: User,
    filters: list_filters.ContactFilters | None,
    page: pages.ContactPage | None,
) -> dict[int, dict[str, str]]:
    """How long each listed contact's lead has waited in the queue, when
    the list is the queue: {contact id: {"iso": ..., "text": ...}}."""
    if filters is None or page is None or filters.lead != "waiting":
        return {}
    if not query.queue_waiting(viewer):
        return {}
    since = query.waiting_since(viewer.account_id, [c.id for c in page.contacts])
    now = datetime.now(UTC)
    return {
        contact_id: {
            "iso": _iso(moment),
            "text": _(
                "waiting %(duration)s",
                duration=format_timedelta(
                    max(now - moment, timedelta(0)),
                    threshold=1.5,
                    add_direction=False,
                ),
            ),
        }
        for contact_id, moment in since.items()
    }


def _list_context(
    account: Account,
    viewer: User,
    filters: list_filters.ContactFilters | None,
    page: pages.ContactPage | None,
    errors: dict[str, str],
) -> dict:
    more_url = export_url = None
    if filters is not None and page is not None and page.next_cursor:
        args = {**filters.query_args(), "cursor": page.next_cursor}
        if filters.limit != list_filters.DEFAULT_LIMIT:
            args["limit"] = str(filters.limit)
        more_url = list_url(args)
    if filters is not None:
        export_url = url_for("contacts.export_csv") + (
            "?" + filters.query_string() if filters.query_string() else ""
        )
    assignees = assignable_users(viewer)
    return {
        "filters": filters,
        "page": page or pages.ContactPage(),
        "errors": errors,
        "more_url": more_url,
        "export_url": export_url,
        "assignees": assignees,
        # Rows show the owner and a "Change" button that fetches the picker
        # on demand: 50 rows x 200 people of <option>s made pages of 700 KB.
        "compact_owner": True,
        "bulk": viewer.can("contacts.assign"),
        "error_fields": ERROR_FIELDS,
        "open_too_long_hours": account.open_too_long_hours,
        "waits": _waits(viewer, filters, page),
    }


def _raw_values(args: Mapping[str, str]) -> dict[str, str]:
    """What the viewer typed, to refill the form even when it is invalid."""
    return {key: (args.get(key) or "")[:300] for key in list_filters.FILTER_KEYS}


def _list_response(
    account: Account,
    viewer: User,
    *,
    filters: list_filters.ContactFilters | None = None,
    page: pages.ContactPage | None = None,
    errors: dict[str, str] | None = None,
) -> ResponseReturnValue:
    errors = errors or {}
    status = 422 if errors else 200
    context = _list_context(account, viewer, filters, page, errors)
    if fragment_wanted():
        if _wants_more_rows() and not errors:
            return render(INDEX, "rows", **context), status
        response = make_response(render(INDEX, "results_fragment", **context), status)
        if filters is not None:
            # The bookmarkable address: the canonical query, not every
            # empty field the form happened to send.
            response.headers["HX-Push-Url"] = list_url(filters.query_args())
        return response
    quick_view = quick_views.quick_view_of(filters) if filters else None
    choices = _choices(account, viewer)
    new_url = url_for("contacts.new") if viewer.can("contacts.create") else None
    return (
        render(
            INDEX,
            values=_raw_values(request.args),
            choices=choices,
            unshown_fields=choices["unshown_fields"],
            dashboard_keys=list_filters.DASHBOARD_KEYS,
            quick_links=_quick_links(account, viewer),
            quick_view=quick_view,
            saved=saved_filters.list_saved(viewer),
            save_errors={},
            new_url=new_url,
            **context,
        ),
        status,
    )


@bp.get("/contacts")
@require(*VIEW_PERMISSIONS)
def index() -> ResponseReturnValue:
    """The filtered list; a bad filter is named next to its field (422), a
    cursor this list did not issue answers 400."""
    account = current_account()
    viewer = current_viewer()
    try:
        filters = list_filters.parse_filters(account, request.args, viewer)
    except ValidationError as exc:
        return _list_response(account, viewer, errors=exc.fields)
    except cursor.BadCursor as exc:
        return error_response(400, str(exc))
    page = pages.list_contacts(viewer, filters)
    return _list_response(account, viewer, filters=filters, page=page)


@bp.get("/contacts/counts")
@require(*VIEW_PERMISSIONS)
def counts() -> ResponseReturnValue:
    """The quick views with their capped counts, loaded after the page so
    counting never delays the list."""
    account = current_account()
    viewer = current_viewer()
    current = request.args.get("current", "")
    return render(
        INDEX,
        "quick_views",
        quick_links=_quick_links(account, viewer),
        quick_view=current if current in quick_views.quick_views_for(viewer) else None,
        counts=quick_views.quick_counts(viewer, account),
    )
