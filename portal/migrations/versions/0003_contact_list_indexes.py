"""contact list indexes

Indexes the contact list's query plans need (EXPLAIN on 1,000,000 contacts):
- (account_id, owner_id, last_activity_at): "mine" / "unassigned" sorted by
  last activity without sorting every row of the owner;
- (account_id, status, last_activity_at): "open too long";
- (account_id, created_at): created-date ranges;
- (account_id, phone_e164) replaces (phone_e164): the "+55 11 9..." search
  and phone matching within the account.
On PostgreSQL the prefix-searched columns (name_search, phone_national,
phone_e164, email_normalized) use varchar_pattern_ops, so a prefix range is
byte-wise and indexed whatever the database collation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

PATTERN_SEARCHED = (
    ('ix_contact_name', 'name_search'),
    ('ix_contact_phone', 'phone_national'),
    ('ix_contact_email', 'email_normalized'),
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    op.create_index(
        'ix_contact_owner_activity',
        'contact',
        ['account_id', 'owner_id', 'last_activity_at'],
    )
    op.create_index(
        'ix_contact_open_idle', 'contact', ['account_id', 'status', 'last_activity_at']
    )
    op.create_index('ix_contact_created', 'contact', ['account_id', 'created_at'])
    op.drop_index('ix_contact_phone_e164', table_name='contact')
    op.create_index(
        'ix_contact_e164',
        'contact',
        ['account_id', 'phone_e164'],
        postgresql_ops={'phone_e164': 'varchar_pattern_ops'},
    )
    if _postgresql():
        for name, column in PATTERN_SEARCHED:
            op.drop_index(name, table_name='contact')
            op.create_index(
                name,
                'contact',
                ['account_id', column],
                postgresql_ops={column: 'varchar_pattern_ops'},
            )


def downgrade():
    if _postgresql():
        for name, column in PATTERN_SEARCHED:
            op.drop_index(name, table_name='contact')
            op.create_index(name, 'contact', ['account_id', column])
    op.drop_index('ix_contact_e164', table_name='contact')
    op.create_index('ix_contact_phone_e164', 'contact', ['phone_e164'])
    op.drop_index('ix_contact_created', table_name='contact')
    op.drop_index('ix_contact_open_idle', table_name='contact')
    op.drop_index('ix_contact_owner_activity', table_name='contact')
