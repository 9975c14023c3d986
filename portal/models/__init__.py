"""SQLAlchemy models, one module per domain; import them all from here."""

from portal.models.account import Account, ProcessMode
from portal.models.contact import (
    AssignmentHow,
    AssignmentLog,
    Campaign,
    Contact,
    ContactStatus,
    HistoryEntry,
    Lead,
    LeadState,
    Notification,
    Origin,
    SavedFilter,
)
from portal.models.imports import ContactImport, DuplicatePolicy, ImportStatus
from portal.models.jobs import BackgroundJob, JobKind, JobStatus
from portal.models.org import Department, Team, TeamMember, Unit, UnitMember
from portal.models.roulette import (
    ENDED_WITHOUT_OWNER,
    AgentState,
    ApiKey,
    Offer,
    OfferState,
)
from portal.models.task import RuleFiring, Task, TaskRule
from portal.models.user import Role, RolePermission, User, UserStatus

__all__ = [
    "ENDED_WITHOUT_OWNER",
    "Account",
    "AgentState",
    "ApiKey",
    "Offer",
    "OfferState",
    "AssignmentHow",
    "BackgroundJob",
    "AssignmentLog",
    "Campaign",
    "Contact",
    "ContactImport",
    "ContactStatus",
    "HistoryEntry",
    "Lead",
    "LeadState",
    "Notification",
    "Origin",
    "SavedFilter",
    "Department",
    "DuplicatePolicy",
    "ImportStatus",
    "JobKind",
    "JobStatus",
    "ProcessMode",
    "Role",
    "RolePermission",
    "RuleFiring",
    "Task",
    "TaskRule",
    "Team",
    "TeamMember",
    "Unit",
    "UnitMember",
    "User",
    "UserStatus",
]
