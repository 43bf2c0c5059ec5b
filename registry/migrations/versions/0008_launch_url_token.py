"""a launch's URL token (Binder's notebook token), encrypted

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url_token_encrypted', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.drop_column('url_token_encrypted')
