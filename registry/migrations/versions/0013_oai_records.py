"""the OAI-PMH feed's records (datestamps and deletions); people's notification settings

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oai_records',
    sa.Column('pid', sa.String(length=500), nullable=False),
    sa.Column('facility', sa.String(length=64), nullable=False),
    sa.Column('sets', sa.Text(), nullable=False),
    sa.Column('doi', sa.String(length=500), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('datestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('pid')
    )
    with op.batch_alter_table('oai_records', schema=None) as batch_op:
        batch_op.create_index('ix_oai_records_datestamp', ['datestamp', 'pid'], unique=False)

    op.create_table('notification_settings',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('email_enabled', sa.Boolean(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('webhook_url', sa.String(length=2048), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id')
    )


def downgrade() -> None:
    op.drop_table('notification_settings')
    with op.batch_alter_table('oai_records', schema=None) as batch_op:
        batch_op.drop_index('ix_oai_records_datestamp')
    op.drop_table('oai_records')
