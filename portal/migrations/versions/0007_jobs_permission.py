"""jobs.manage for the built-in administrator role

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:00:00

A built-in role's permissions are rows, written when its account was made:
an administrator of an existing account gets the new permission here, as a
new account's does from its preset.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "INSERT INTO role_permission (role_id, permission) "
        "SELECT r.id, 'jobs.manage' FROM role r "
        "WHERE r.builtin AND r.key = 'admin' AND NOT EXISTS ("
        "  SELECT 1 FROM role_permission p "
        "  WHERE p.role_id = r.id AND p.permission = 'jobs.manage')"
    )


def downgrade():
    op.execute("DELETE FROM role_permission WHERE permission = 'jobs.manage'")
