"""The contact list, its fragments, bulk assignment, saved views, the CSV
export, and the assign endpoint (CONTRACT: GET /contacts,
POST /contacts/<id>/assign).

htmx requests get named blocks of contacts/index.html (the results, more
rows, the counts, the saved views); the same URLs without htmx render the
whole page or redirect back to it (303). Every query is scoped by
scope.visible_clause through portal.contacts.listing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from babel import Locale
from babel.dates import (
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    request,
    url_for,
)
from flask_babel import format_timedelta, get_locale, get_timezone, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from portal.auth.access import require
from portal.contacts import export, listing, saved_filters, service
from portal.contacts.labels import ORIGIN_LABELS, STATUS_LABELS
from portal.contacts.scope import assignable_users_clause, visible_clause
from portal.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.errors_http import error_response
from portal.extensions import db
from portal.ids import parse_id
from portal.models import (
    Account,
    Campaign,
    Contact,
    Department,
    Team,
    Unit,
    User,
)
from portal.navigation import CONTACT_VIEW_PERMISSIONS
from portal.rendering import render
from portal.settings.service import current_account

bp = Blueprint("contacts", __name__)

VIEW_PERMISSIONS = CONTACT_VIEW_PERMISSIONS
INDEX = "contacts/index.html"
MORE_ROW_ID = "contact-more"
MAX_BULK = 500
# Every query-string key that can carry an error shown next to its field.
ERROR_FIELDS = (*listing.FILTER_KEYS, "limit")

SORT_LABELS = {
    "newest": _l("Newest first"),
    "oldest": _l("Oldest first"),
    "last_activity": _l("Latest activity first"),
}
QUICK_VIEW_LABELS = {
    "all": _l("All I can see"),
    "mine": _l("Mine"),
    "unassigned": _l("Unassigned"),
    "open_too_long": _l("Open too long"),
    "waiting": _l("Waiting in the queue"),
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
        if moment.tzinfo is None:  # SQLite hands back naive UTC
            moment = moment.replace(tzinfo=UTC)
        return pattern.apply(moment.astimezone(zone), locale)

    return when


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _viewer() -> User:
    return current_user._get_current_object()


def _fragment_wanted() -> bool:
    """An htmx swap wants a fragment; a boosted or history load wants the page."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def _wants_more_rows() -> bool:
    # htmx 4 names the target as "tag#id": the "Load more" row asks for rows.
    return request.headers.get("HX-Target", "").endswith("#" + MORE_ROW_ID)


def assignable_users(user: User) -> list[User]:
    """Whom `user` may pick in an assign control (themself when an agent):
    people in their scope who may own contacts (service.assign refuses the
    others, so they are not offered)."""
    people = db.session.scalars(
        select(User).where(assignable_users_clause(user)).order_by(User.name)
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
    def rows(model):
        return list(
            db.session.scalars(
                select(model).where(model.account_id == account.id).order_by(model.name)
            )
        )

    may_assign = viewer.can("contacts.assign")
    choices = {
        "statuses": STATUS_LABELS,
        "origins": ORIGIN_LABELS,
        "sorts": SORT_LABELS,
        "departments": rows(Department),
        "campaigns": rows(Campaign),
        "teams": rows(Team) if may_assign else [],
        "units": rows(Unit) if may_assign else [],
    }
    shown = set(ERROR_FIELDS) - {"department", "campaign", "team", "unit", "limit"}
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
    hours = account.open_too_long_hours
    return [
        {
            "view": view,
            "label": QUICK_VIEW_LABELS[view],
            "url": list_url(listing.quick_view_filters(hours, view).query_args()),
        }
        for view in listing.quick_views_for(viewer)
    ]


def _waits(
    viewer: User,
    filters: listing.ContactFilters | None,
    page: listing.ContactPage | None,
) -> dict[int, dict[str, str]]:
    """How long each listed contact's lead has waited in the queue, when
    the list is the queue: {contact id: {"iso": ..., "text": ...}}."""
    if filters is None or page is None or filters.lead != "waiting":
        return {}
    if not listing.queue_waiting(viewer):
        return {}
    since = listing.waiting_since(viewer.account_id, [c.id for c in page.contacts])
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
    filters: listing.ContactFilters | None,
    page: listing.ContactPage | None,
    errors: dict[str, str],
) -> dict:
    more_url = export_url = None
    if filters is not None and page is not None and page.next_cursor:
        args = {**filters.query_args(), "cursor": page.next_cursor}
        if filters.limit != listing.DEFAULT_LIMIT:
            args["limit"] = str(filters.limit)
        more_url = list_url(args)
    if filters is not None:
        export_url = url_for("contacts.export_csv") + (
            "?" + filters.query_string() if filters.query_string() else ""
        )
    assignees = assignable_users(viewer)
    return {
        "filters": filters,
        "page": page or listing.ContactPage(),
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


def _raw_values(args) -> dict[str, str]:
    """What the viewer typed, to refill the form even when it is invalid."""
    return {key: (args.get(key) or "")[:300] for key in listing.FILTER_KEYS}


def _list_response(
    account: Account,
    viewer: User,
    *,
    filters: listing.ContactFilters | None = None,
    page: listing.ContactPage | None = None,
    errors: dict[str, str] | None = None,
):
    errors = errors or {}
    status = 422 if errors else 200
    context = _list_context(account, viewer, filters, page, errors)
    if _fragment_wanted():
        if _wants_more_rows() and not errors:
            return render(INDEX, "rows", **context), status
        response = make_response(render(INDEX, "results_fragment", **context), status)
        if filters is not None:
            # The bookmarkable address: the canonical query, not every
            # empty field the form happened to send.
            response.headers["HX-Push-Url"] = list_url(filters.query_args())
        return response
    quick_view = listing.quick_view_of(filters) if filters else None
    choices = _choices(account, viewer)
    new_url = (
        url_for("contact.new")
        if "contact.new" in current_app.view_functions and viewer.can("contacts.create")
        else None
    )
    return (
        render(
            INDEX,
            values=_raw_values(request.args),
            choices=choices,
            unshown_fields=choices["unshown_fields"],
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
def index():
    """The filtered list; a bad filter is named next to its field (422), a
    cursor this list did not issue answers 400."""
    account = current_account()
    viewer = _viewer()
    try:
        filters = listing.parse_filters(account, request.args, viewer)
    except ValidationError as exc:
        return _list_response(account, viewer, errors=exc.fields)
    except listing.BadCursor as exc:
        return error_response(400, str(exc))
    page = listing.list_contacts(viewer, filters)
    return _list_response(account, viewer, filters=filters, page=page)


@bp.get("/contacts/counts")
@require(*VIEW_PERMISSIONS)
def counts():
    """The quick views with their capped counts, loaded after the page so
    counting never delays the list."""
    account = current_account()
    viewer = _viewer()
    current = request.args.get("current", "")
    return render(
        INDEX,
        "quick_views",
        quick_links=_quick_links(account, viewer),
        quick_view=current if current in listing.quick_views_for(viewer) else None,
        counts=listing.quick_counts(viewer, account),
    )


# --- Assigning ----------------------------------------------------------------


def _owner_fragment(contact, status: int = 200, error: str | None = None):
    html = render(
        "contacts/_owner.html",
        contact=contact,
        # Only those who assign get a picker; agents' claims skip the query.
        assignees=(
            assignable_users(current_user)
            if current_user.can("contacts.assign")
            else []
        ),
        error=error,
    )
    return html, status


@bp.get("/contacts/<int:contact_id>/owner")
@require(*VIEW_PERMISSIONS)
def owner(contact_id: int):
    """The owner component with its full assign control (the list's rows
    fetch it when "Change" is pressed)."""
    try:
        contact = service.get_visible(current_user, contact_id)
    except NotFound:
        abort(404)
    return _owner_fragment(contact)


@bp.post("/contacts/<int:contact_id>/assign")
@require("contacts.claim", "contacts.assign")
def assign(contact_id: int):
    """Take (empty user_id) or give the contact; answers the owner component."""
    to_user_id = request.form.get("user_id") or None
    try:
        contact = service.assign(current_user, contact_id, to_user_id)
    except NotFound:
        abort(404)
    except Forbidden as exc:
        return _refused(contact_id, 403, str(exc))
    except Conflict as exc:
        return _refused(contact_id, 409, str(exc))
    if not request.htmx:
        return redirect(request.referrer or url_for("contacts.index"), code=303)
    return _owner_fragment(contact)


def _refused(contact_id: int, status: int, message: str):
    """The owner component as it is now, with why the change was refused."""
    contact = db.session.get(Contact, contact_id)
    db.session.refresh(contact)
    return _owner_fragment(contact, status, message)


def _back_url() -> str:
    """The list the form came from: its filters only, never another site."""
    pairs = parse_qsl(request.form.get("back", ""), keep_blank_values=False)
    return list_url({k: v for k, v in pairs if k in listing.FILTER_KEYS})


def _bulk_summary(result: service.BulkResult) -> str:
    assigned = ngettext("%(num)d assigned", "%(num)d assigned", len(result.assigned))
    if not result.failed:
        return _("%(assigned)s.", assigned=assigned)
    reasons = " ".join(dict.fromkeys(result.failed.values()))
    return _(
        "%(assigned)s; %(refused)d refused: %(reasons)s",
        assigned=assigned,
        refused=len(result.failed),
        reasons=reasons,
    )


def _bulk_input() -> tuple[list[int], int]:
    """Selected contact ids and the assignee; raises ValidationError."""
    raw_ids = request.form.getlist("contact_id")
    errors: dict[str, str] = {}
    if not raw_ids:
        errors["contact_id"] = _("Select at least one contact.")
    elif len(raw_ids) > MAX_BULK:
        errors["contact_id"] = _("Select at most %(n)d contacts.", n=MAX_BULK)
    elif None in map(parse_id, raw_ids):
        errors["contact_id"] = _("Pick from the list.")
    raw_user = (request.form.get("user_id") or "").strip()
    if parse_id(raw_user) is None:
        errors["user_id"] = _("Pick whom to assign to.")
    if errors:
        raise ValidationError(errors)
    return [int(raw) for raw in raw_ids], int(raw_user)


@bp.post("/contacts/bulk-assign")
@require("contacts.assign")
def bulk_assign():
    """Assign the selected contacts to one person; each contact wins or is
    refused on its own. htmx gets a summary and the refreshed rows."""
    viewer = _viewer()
    try:
        ids, to_user_id = _bulk_input()
    except ValidationError as exc:
        message = " ".join(exc.fields.values())
        if _fragment_wanted():
            return render(INDEX, "bulk_done", message=message, level="error"), 422
        flash(message, "error")
        return redirect(_back_url(), code=303)
    result = service.bulk_assign(viewer, ids, to_user_id)
    message = _bulk_summary(result)
    level = "error" if result.failed else "success"
    if not _fragment_wanted():
        flash(message, level)
        return redirect(_back_url(), code=303)
    db.session.expire_all()
    assignees = assignable_users(viewer)
    contacts = list(
        db.session.scalars(
            listing.with_related(
                select(Contact).where(Contact.id.in_(ids), visible_clause(viewer))
            )
        )
    )
    return render(
        INDEX,
        "bulk_done",
        message=message,
        level=level,
        contacts=contacts,
        assignees=assignees,
        compact_owner=True,
        bulk=True,
    )


# --- Saved views --------------------------------------------------------------


def _saved_response(viewer: User, errors: dict[str, str] | None = None, **extra):
    errors = errors or {}
    return render(
        INDEX,
        "saved_views",
        saved=saved_filters.list_saved(viewer),
        save_errors=errors,
        **extra,
    ), (422 if errors else 200)


@bp.post("/contacts/saved-views")
@require(*VIEW_PERMISSIONS)
def save_view():
    """Save the current filters under a name (the same name replaces)."""
    viewer = _viewer()
    try:
        saved = saved_filters.save(
            viewer,
            current_account(),
            request.form.get("name", ""),
            request.form.get("query", ""),
        )
    except ValidationError as exc:
        if _fragment_wanted():
            return _saved_response(viewer, exc.fields, name=request.form.get("name"))
        flash(" ".join(exc.fields.values()), "error")
        return redirect(_back_url(), code=303)
    if _fragment_wanted():
        return _saved_response(viewer)
    flash(_("View “%(name)s” saved.", name=saved.name), "success")
    return redirect(list_url(dict(parse_qsl(saved.query))), code=303)


@bp.post("/contacts/saved-views/<int:filter_id>/delete")
@require(*VIEW_PERMISSIONS)
def delete_view(filter_id: int):
    """Delete one of the viewer's saved views (anyone else's answers 404)."""
    viewer = _viewer()
    try:
        saved_filters.delete(viewer, filter_id)
    except NotFound:
        abort(404)
    if _fragment_wanted():
        return _saved_response(viewer)
    return redirect(url_for("contacts.index"), code=303)


# --- Export -------------------------------------------------------------------


@bp.get("/contacts/export.csv")
@require("contacts.export")
def export_csv():
    """The filtered list as CSV, streamed in keyset chunks."""
    args = request.args.copy()
    args.pop("cursor", None)  # an export is the whole list, from its start
    try:
        filters = listing.parse_filters(current_account(), args, _viewer())
    except ValidationError as exc:
        return error_response(
            422,
            " ".join(f"{name}: {message}" for name, message in exc.fields.items()),
        )
    return export.csv_response(_viewer(), filters)
