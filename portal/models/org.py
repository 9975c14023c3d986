"""Structure of the organisation: teams, units and departments."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import AccountScoped

department_member = Table(
    "department_member",
    db.metadata,
    Column(
        "department_id",
        ForeignKey("department.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Team(AccountScoped, db.Model):
    """A group of attendants (and call-center staff) led by coordinators."""

    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    memberships: Mapped[list[TeamMember]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )


class TeamMember(db.Model):
    team_id: Mapped[int] = mapped_column(
        ForeignKey("team.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    team: Mapped[Team] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="team_memberships")  # noqa: F821


class Unit(AccountScoped, db.Model):
    """A store or branch: sellers, with managers over them."""

    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    store_flow: Mapped[bool] = mapped_column(Boolean, default=False)
    memberships: Mapped[list[UnitMember]] = relationship(
        back_populates="unit", cascade="all, delete-orphan"
    )


class UnitMember(db.Model):
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    unit: Mapped[Unit] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="unit_memberships")  # noqa: F821


class Department(AccountScoped, db.Model):
    """A routing target (Sales, Rentals, ...); a user may belong to several."""

    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    # When the roulette may offer its leads: {"mon": ["08:00", "18:00"], ...}
    # in `timezone`; a day missing is closed; None means always open.
    working_hours: Mapped[dict | None] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    users: Mapped[list[User]] = relationship(  # noqa: F821
        secondary=department_member, back_populates="departments"
    )
