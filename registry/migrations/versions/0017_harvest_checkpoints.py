"""harvest checkpoints: a harvest resumes after its last committed page

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('harvest_checkpoints',
    sa.Column('endpoint_id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=False),
    sa.Column('resume', sa.Text(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['search_endpoints.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('endpoint_id')
    )


def downgrade() -> None:
    op.drop_table('harvest_checkpoints')
