"""The API's answers as pydantic models, for the OpenAPI document.

They describe the answers (and let the tests check real answers against the
document); the views build plain dicts, which is cheaper on the intake's hot
path. The request body is `portal.leads.schemas.LeadIn`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from portal.leads.schemas import LeadIn

__all__ = [
    "ContactOut",
    "ContactPageOut",
    "ErrorOut",
    "HealthOut",
    "LeadCreatedOut",
    "LeadIn",
    "LeadOut",
    "OfferOut",
    "OwnerOut",
]


class ErrorOut(BaseModel):
    error: str = Field(
        description=(
            "invalid_json, unauthorized, forbidden, not_found, too_large, "
            "unsupported_media_type, invalid, rate_limited, bad_request, ..."
        )
    )
    message: str
    fields: dict[str, str] = Field(
        description="What is wrong with each bad field (422), else empty."
    )


class LeadCreatedOut(BaseModel):
    id: int
    contact_id: int
    state: Literal["queued", "offered", "assigned"]
    created: bool = Field(description="False when external_id was seen before.")


class OwnerOut(BaseModel):
    id: int
    name: str


class OfferOut(BaseModel):
    agent_id: int
    state: Literal["pending", "accepted", "declined", "expired", "cancelled"]
    offered_at: str = Field(json_schema_extra={"format": "date-time"})
    decided_at: str | None = Field(json_schema_extra={"format": "date-time"})


class LeadOut(BaseModel):
    id: int
    contact_id: int
    state: Literal["queued", "offered", "assigned"]
    owner: OwnerOut | None = Field(description="Who took the lead, once assigned.")
    offers: list[OfferOut]


class ContactOut(BaseModel):
    id: int
    name: str
    phone: str | None
    phone_e164: str | None
    email: str | None
    owner_id: int | None
    status: str
    origin: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class ContactPageOut(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class HealthOut(BaseModel):
    db: Literal["ok", "down"]
    redis: Literal["ok", "down"]
