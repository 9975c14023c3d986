"""The JSON API (CONTRACT "Lead intake API"): leads, contacts, health and
its own OpenAPI document.

Views stay thin: authenticate (`require_scope`), read the request, call one
service, answer JSON. Every error answers `{"error", "message", "fields"}`
(`portal.api.errors`).
"""

from __future__ import annotations

import json
import math

from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import text

from portal.api import contacts as contact_listing
from portal.api import errors
from portal.api.auth import current_account, require_scope
from portal.api.errors import ApiError
from portal.api.openapi import document
from portal.extensions import db
from portal.leads import reading as leads_reading
from portal.leads import service as leads
from portal.redis_conn import get_redis

bp = Blueprint("api", __name__)
errors.register(bp)

MAX_BODY = 64 * 1024


def _too_large() -> ApiError:
    return ApiError(
        413, "too_large", _("The body may be at most %(n)d KiB.", n=MAX_BODY // 1024)
    )


def _read_body() -> bytes:
    """At most MAX_BODY bytes of body, refused before parsing when larger:
    by the declared Content-Length, or while reading when it is absent
    (chunked) or understates the body."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise _too_large()
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY:
        chunk = stream.read(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_BODY:
        raise _too_large()
    return b"".join(chunks)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(raw: str) -> float:
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def json_object() -> dict:
    """The request's JSON object; ApiError 415, 413 or 400 otherwise."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            _("Send the body as JSON with 'Content-Type: application/json'."),
        )
    body = _read_body()
    try:
        # NaN, Infinity and overflowing numbers are not JSON and could not be
        # stored in a JSON column: refuse them with the rest of bad JSON.
        data = json.loads(
            body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", _("The body is not a JSON object."))
    return data


@bp.post("/leads")
@require_scope("leads:write")
def create_lead() -> ResponseReturnValue:
    """201 with the new lead; 200 with the earlier one for a known external_id."""
    intake = leads.receive_lead(current_account(), json_object())
    response = jsonify(
        {
            "id": intake.lead_id,
            "contact_id": intake.contact_id,
            "state": intake.state,
            "created": intake.created,
        }
    )
    response.headers["Location"] = url_for("api.get_lead", lead_id=intake.lead_id)
    response.status_code = 201 if intake.created else 200
    return response


@bp.get("/leads/<int:lead_id>")
@require_scope("leads:read")
def get_lead(lead_id: int) -> ResponseReturnValue:
    return jsonify(leads_reading.lead_detail(current_account(), lead_id))


@bp.get("/contacts")
@require_scope("contacts:read")
def list_contacts() -> ResponseReturnValue:
    return jsonify(contact_listing.contact_page(current_account(), request.args))


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of this API (no key needed)."""
    return jsonify(document())


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 when the database and Redis answer; 503 naming what is down."""
    status = {"db": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any driver error means the same to a probe: down
        db.session.rollback()
        status["db"] = "down"
    try:
        get_redis().ping()
    except Exception:
        status["redis"] = "down"
    code = 200 if all(v == "ok" for v in status.values()) else 503
    return jsonify(status), code
