from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import created_at_column


class ProcessMode(enum.IntEnum):
    ATTENDANT = 1  # an attendant works the lead to the end
    APPOINTMENT = 2  # attendant qualifies, a seller answers an appointment
    HYBRID = 3  # per user: receives web leads and/or creates store leads


class Account(db.Model):
    """The organisation; its settings are typed columns, edited through
    `portal.admin.settings_service` with validation."""

    __table_args__ = (
        CheckConstraint("process_mode IN (1, 2, 3)", name="process_mode"),
        CheckConstraint(
            "roulette_offer_timeout BETWEEN 10 AND 3600", name="offer_timeout"
        ),
        CheckConstraint("roulette_rounds BETWEEN 1 AND 20", name="rounds"),
        CheckConstraint("roulette_capacity BETWEEN 0 AND 1000", name="capacity"),
        CheckConstraint(
            "roulette_queue_alert_minutes BETWEEN 1 AND 1440", name="queue_alert"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    process_mode: Mapped[int] = mapped_column(Integer, default=ProcessMode.ATTENDANT)
    roulette_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    roulette_offer_timeout: Mapped[int] = mapped_column(Integer, default=60)
    roulette_rounds: Mapped[int] = mapped_column(Integer, default=2)
    # Open (accepted, not yet attended) leads an agent may hold; 0 = no cap.
    roulette_capacity: Mapped[int] = mapped_column(Integer, default=0)
    # A lead waiting this long in the queue alerts its department's managers.
    roulette_queue_alert_minutes: Mapped[int] = mapped_column(Integer, default=10)
    open_too_long_hours: Mapped[int] = mapped_column(Integer, default=48)
    created_at: Mapped[datetime] = created_at_column()
