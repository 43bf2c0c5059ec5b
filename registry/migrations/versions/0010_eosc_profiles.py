"""EOSC: facility provider ids, contacts and credential; per-service profile fields; bundle state

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _facility() -> list[sa.Column]:
    return [
        sa.Column('eosc_provider_id', sa.String(200), nullable=True),
        sa.Column('eosc_main_contact', sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column('eosc_public_contacts', sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column('eosc_helpdesk_email', sa.String(320), nullable=True),
        sa.Column('eosc_security_email', sa.String(320), nullable=True),
        sa.Column('eosc_client_id', sa.String(200), nullable=True),
        sa.Column('eosc_credential_encrypted', sa.Text(), nullable=True),
    ]


def _entry() -> list[sa.Column]:
    return [
        sa.Column('logo', sa.String(2048), nullable=True),
        sa.Column('tagline', sa.String(200), nullable=True),
        sa.Column('webpage', sa.String(2048), nullable=True),
        sa.Column('main_contact', sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column('public_contacts', sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column('helpdesk_email', sa.String(320), nullable=True),
        sa.Column('security_email', sa.String(320), nullable=True),
        sa.Column('terms_of_use', sa.String(2048), nullable=True),
        sa.Column('privacy_policy', sa.String(2048), nullable=True),
        sa.Column('access_policy', sa.String(2048), nullable=True),
        sa.Column('access_types', sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column('access_modes', sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column('order_type', sa.String(64), nullable=True),
        sa.Column('order_url', sa.String(2048), nullable=True),
        sa.Column('node_pid', sa.String(200), nullable=True),
        sa.Column('jurisdiction', sa.String(100), nullable=True),
        sa.Column('publishing_date', sa.String(10), nullable=True),
        sa.Column('catalogue_active', sa.Boolean(), nullable=True),
        sa.Column('catalogue_suspended', sa.Boolean(), nullable=True),
        sa.Column('catalogue_draft', sa.Boolean(), nullable=True),
        sa.Column('audit_state', sa.String(64), nullable=True),
        sa.Column('catalogue_version', sa.String(100), nullable=True),
        sa.Column('last_push_error', sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table('facilities', schema=None) as batch_op:
        for column in _facility():
            batch_op.add_column(column)
    with op.batch_alter_table('eosc_entries', schema=None) as batch_op:
        for column in _entry():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table('eosc_entries', schema=None) as batch_op:
        for column in reversed(_entry()):
            batch_op.drop_column(column.name)
    with op.batch_alter_table('facilities', schema=None) as batch_op:
        for column in reversed(_facility()):
            batch_op.drop_column(column.name)
