"""background jobs carry parameters (a reassignment's heirs)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('background_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
    op.execute("UPDATE background_job SET params = '{}' WHERE params IS NULL")
    with op.batch_alter_table('background_job', schema=None) as batch_op:
        batch_op.alter_column('params', existing_type=sa.JSON(), nullable=False)


def downgrade():
    with op.batch_alter_table('background_job', schema=None) as batch_op:
        batch_op.drop_column('params')
