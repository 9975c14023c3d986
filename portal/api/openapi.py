"""The OpenAPI 3.1 document of the JSON API, served at /api/v1/openapi.json.

Schemas come from the pydantic models (`portal.api.schemas`), so the request
body documented is the one validated. A test checks that every route of the
API blueprint is described here.
"""

from __future__ import annotations

from functools import cache

from flask import request

from portal.api import schemas
from portal.apikeys.service import SCOPES
from portal.leads.schemas import MAX_CUSTOM_FIELDS

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

_MODELS = (
    schemas.LeadIn,
    schemas.LeadCreatedOut,
    schemas.LeadOut,
    schemas.ContactPageOut,
    schemas.ErrorOut,
    schemas.HealthOut,
)


def _components() -> dict:
    found: dict = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
    }


def _error(description: str) -> dict:
    return _json("ErrorOut", description)


_RATE_LIMITED = {
    **_error("Too many requests with this key (`rate_limited`)."),
    "headers": {
        "Retry-After": {
            "description": "Seconds until the key may send again.",
            "schema": {"type": "integer"},
        }
    },
}

_AUTH_ERRORS = {
    "401": _error("Missing, malformed, unknown or revoked key (`unauthorized`)."),
    "403": _error("The key lacks the scope this endpoint needs (`forbidden`)."),
    "429": _RATE_LIMITED,
}


def _secured(scope: str) -> list[dict]:
    return [{"bearer": [scope]}]


@cache
def _paths() -> dict:
    return {
        "/leads": {
            "post": {
                "operationId": "createLead",
                "summary": "Send a lead",
                "description": (
                    "Creates the lead (and its contact, unless a contact with "
                    "the same phone or email exists) and, when the roulette is "
                    "on, offers it to an online agent before answering. "
                    "Bodies are at most 64 KiB. Needs scope `leads:write`."
                ),
                "security": _secured("leads:write"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("LeadIn")}},
                },
                "responses": {
                    "201": _json("LeadCreatedOut", "Created."),
                    "200": _json(
                        "LeadCreatedOut",
                        "This external_id was sent before: the earlier lead, "
                        "nothing created (`created` is false).",
                    ),
                    "400": _error("The body is not a JSON object (`invalid_json`)."),
                    **_AUTH_ERRORS,
                    "413": _error("The body is over 64 KiB (`too_large`)."),
                    "415": _error(
                        "Content-Type is not application/json "
                        "(`unsupported_media_type`)."
                    ),
                    "422": _error(
                        "Some fields are not valid (`invalid`); `fields` names "
                        f"each. custom holds at most {MAX_CUSTOM_FIELDS} fields."
                    ),
                },
            }
        },
        "/leads/{lead_id}": {
            "get": {
                "operationId": "getLead",
                "summary": "A lead, its owner and its offers",
                "description": "Needs scope `leads:read`.",
                "security": _secured("leads:read"),
                "parameters": [
                    {
                        "name": "lead_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": _json("LeadOut", "The lead."),
                    **_AUTH_ERRORS,
                    "404": _error("No such lead in this key's account (`not_found`)."),
                },
            }
        },
        "/contacts": {
            "get": {
                "operationId": "listContacts",
                "summary": "Contacts, in id order, a page at a time",
                "description": "Needs scope `contacts:read`.",
                "security": _secured("contacts:read"),
                "parameters": [
                    {
                        "name": "owner",
                        "in": "query",
                        "description": "A user id, or `unassigned`.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "The `next_cursor` of the previous page.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 500,
                            "default": 100,
                        },
                    },
                ],
                "responses": {
                    "200": _json("ContactPageOut", "One page."),
                    "400": _error("The cursor was altered (`bad_request`)."),
                    **_AUTH_ERRORS,
                    "422": _error("A bad owner or limit (`invalid`)."),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the database and Redis answer",
                "security": [],
                "responses": {
                    "200": _json("HealthOut", "Both answer."),
                    "503": _json("HealthOut", "One is down (named)."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def document() -> dict:
    """The whole document; the server URL is the one the client used."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Roleta lead intake API",
            "version": VERSION,
            "description": (
                "Send leads into Roleta's lead roulette and read leads and "
                "contacts back. Authenticate with an API key made by an admin "
                "(Admin → API keys, or `flask --app app api-key create NAME`): "
                "`Authorization: Bearer <key>`. Every error answers "
                '`{"error", "message", "fields"}`.'
            ),
        },
        "servers": [{"url": request.host_url.rstrip("/") + "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key; scopes: "
                    + ", ".join(f"`{scope}`" for scope in SCOPES),
                }
            },
        },
    }


@cache
def _schemas() -> dict:
    return _components()
