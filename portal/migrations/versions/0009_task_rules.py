"""automatic task rules, and task_rules.manage for built-in admins and managers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('task_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=30), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('due_hours', sa.Integer(), nullable=True),
    sa.Column('assignee', sa.String(length=20), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_task_rule_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_task_rule_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_rule'))
    )
    with op.batch_alter_table('task_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_rule_account_id'), ['account_id'], unique=False)

    op.create_table('rule_firing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=100), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], name=op.f('fk_rule_firing_contact_id_contact'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['task_rule.id'], name=op.f('fk_rule_firing_rule_id_task_rule'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_rule_firing_task_id_task'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_firing')),
    sa.UniqueConstraint('rule_id', 'event_key', name=op.f('uq_rule_firing_rule_id_event_key'))
    )
    with op.batch_alter_table('rule_firing', schema=None) as batch_op:
        batch_op.create_index('ix_rule_firing_contact', ['contact_id', 'rule_id', 'created_at'], unique=False)
    op.execute(
        "INSERT INTO role_permission (role_id, permission) "
        "SELECT r.id, 'task_rules.manage' FROM role r "
        "WHERE r.builtin AND r.key IN ('admin', 'manager') AND NOT EXISTS ("
        "  SELECT 1 FROM role_permission p "
        "  WHERE p.role_id = r.id AND p.permission = 'task_rules.manage')"
    )


def downgrade():
    op.execute("DELETE FROM role_permission WHERE permission = 'task_rules.manage'")
    op.drop_table('rule_firing')
    op.drop_table('task_rule')
