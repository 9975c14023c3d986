"""Per person: whether what they missed is mailed, and how far the digests
got. Kept beside the notification center that alone reads and writes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime


class NotificationMail(db.Model):
    """A user's digest state; no row yet means mailed, nothing sent so far."""

    __tablename__ = "notification_mail"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # The newest notification a digest told of: the next one starts after it.
    mailed_up_to: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
