"""Users and the roles that grant them permissions."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import AccountScoped, UTCDateTime, created_at_column
from portal.models.org import TeamMember, UnitMember, department_member
from portal.models.permissions import PRESETS_BY_KEY


class Role(AccountScoped, db.Model):
    """A named set of permissions: a built-in preset or an admin's custom role."""

    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Agent roles start restricted to their own contacts (PRODUCT §1).
    restricted_by_default: Mapped[bool] = mapped_column(Boolean, default=False)
    grants: Mapped[list[RolePermission]] = relationship(
        back_populates="role", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset(grant.permission for grant in self.grants)

    @property
    def display_name(self) -> str:
        """Built-in roles show in the reader's language; custom ones as named."""
        preset = PRESETS_BY_KEY.get(self.key) if self.builtin else None
        return str(preset.name) if preset else self.name


class RolePermission(db.Model):
    role_id: Mapped[int] = mapped_column(
        ForeignKey("role.id", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(String(60), primary_key=True)
    role: Mapped[Role] = relationship(back_populates="grants")


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class User(UserMixin, AccountScoped, db.Model):
    # "user" is reserved in PostgreSQL; a plural name spares every raw query.
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("account_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased: the unique constraint then holds case-insensitively.
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(10))
    # Dates are entered and shown on this clock (portal.localtime); None: UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=UserStatus.ACTIVE)
    role_id: Mapped[int] = mapped_column(ForeignKey("role.id"), index=True)
    is_restricted: Mapped[bool] = mapped_column(Boolean, default=True)
    receives_web_leads: Mapped[bool] = mapped_column(Boolean, default=False)
    creates_store_leads: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on suspension, deletion and password change: every session and
    # remember-me cookie carrying the old value stops working at once.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    activation_nonce: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = created_at_column()

    role: Mapped[Role] = relationship(lazy="joined")
    team_memberships: Mapped[list[TeamMember]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    unit_memberships: Mapped[list[UnitMember]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    departments: Mapped[list[Department]] = relationship(  # noqa: F821
        secondary=department_member, back_populates="users"
    )

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE

    @property
    def permissions(self) -> frozenset[str]:
        return self.role.permissions

    def can(self, permission: str) -> bool:
        return permission in self.role.permissions
