"""a basket across facilities: the datasets a person collects to analyse together, and the manifest a
basket launch hands its session

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('basket_items',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('pid', sa.String(length=500), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', 'pid')
    )
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('basket', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.drop_column('basket')
    op.drop_table('basket_items')
