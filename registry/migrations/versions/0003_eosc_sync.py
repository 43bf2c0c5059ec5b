"""EOSC sync state and history

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eosc_sync_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('onboarding_status', sa.String(length=64), nullable=True),
    sa.Column('drift', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['service_id'], ['eosc_entries.service_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('eosc_sync_events', schema=None) as batch_op:
        batch_op.create_index('ix_eosc_sync_events_service', ['service_id', 'at'], unique=False)

    with op.batch_alter_table('eosc_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scientific_domains', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('categories', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('trl', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('profile', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('onboarding_status', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('catalogue_name', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('catalogue_url', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('catalogue_lifecycle', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('drift', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('last_sync_error', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('eosc_entries', schema=None) as batch_op:
        batch_op.drop_column('last_sync_error')
        batch_op.drop_column('drift')
        batch_op.drop_column('catalogue_lifecycle')
        batch_op.drop_column('catalogue_url')
        batch_op.drop_column('catalogue_name')
        batch_op.drop_column('onboarding_status')
        batch_op.drop_column('profile')
        batch_op.drop_column('trl')
        batch_op.drop_column('categories')
        batch_op.drop_column('scientific_domains')

    with op.batch_alter_table('eosc_sync_events', schema=None) as batch_op:
        batch_op.drop_index('ix_eosc_sync_events_service')

    op.drop_table('eosc_sync_events')
