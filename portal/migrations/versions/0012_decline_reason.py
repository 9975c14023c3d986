"""an agent's reason for declining an offer (optional)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 20:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('offer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decline_reason', sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table('offer', schema=None) as batch_op:
        batch_op.drop_column('decline_reason')
