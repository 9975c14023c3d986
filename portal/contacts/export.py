"""CSV export of the filtered contact list.

Streamed: rows are read in keyset chunks and written as they come, so a
million-row export holds one chunk in memory. Visibility is the list's
(pages.page_plan always applies scope.visible_clause). Cells a
spreadsheet would run as a formula are neutralised (portal.csvsafe).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

from flask import Response, stream_with_context
from sqlalchemy import Select
from sqlalchemy.orm import aliased

from portal.contacts import list_filters, pages
from portal.csvsafe import neutralise
from portal.models import Campaign, Contact, Department, User

COLUMNS = (
    "id",
    "name",
    "phone",
    "email",
    "owner",
    "status",
    "origin",
    "department",
    "campaign",
    "created_at",
    "last_activity_at",
)
CHUNK = 1000
BOM = "\ufeff"  # spreadsheet apps then read the file as UTF-8


def _timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _export_columns(query: Select) -> Select:
    # Aliases: the visibility clause has subqueries on users, which must
    # not correlate with the owner join.
    owner = aliased(User)
    department = aliased(Department)
    campaign = aliased(Campaign)
    return (
        query.with_only_columns(
            Contact.id,
            Contact.name,
            Contact.phone,
            Contact.email,
            owner.name.label("owner"),
            Contact.status,
            Contact.origin,
            department.name.label("department"),
            campaign.name.label("campaign"),
            Contact.created_at,
            Contact.last_activity_at,
        )
        .select_from(Contact)
        .outerjoin(owner, owner.id == Contact.owner_id)
        .outerjoin(department, department.id == Contact.department_id)
        .outerjoin(campaign, campaign.id == Contact.campaign_id)
    )


def csv_chunks(
    user: User, filters: list_filters.ContactFilters, chunk: int = CHUNK
) -> Iterator[str]:
    """The CSV text, BOM and header first, then one piece per `chunk` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    yield BOM + buffer.getvalue()
    for rows in pages.iter_rows(user, filters, _export_columns, chunk):
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow(
                (
                    row.id,
                    neutralise(row.name),
                    neutralise(row.phone),
                    neutralise(row.email),
                    neutralise(row.owner),
                    neutralise(row.status),
                    neutralise(row.origin),
                    neutralise(row.department),
                    neutralise(row.campaign),
                    _timestamp(row.created_at),
                    _timestamp(row.last_activity_at),
                )
            )
        yield buffer.getvalue()


def csv_response(user: User, filters: list_filters.ContactFilters) -> Response:
    """A streamed CSV download named after today's date."""
    filename = f"contacts-{date.today().isoformat()}.csv"
    response = Response(
        stream_with_context(csv_chunks(user, filters)),
        mimetype="text/csv",
    )
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
