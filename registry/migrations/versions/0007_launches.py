"""launches and their events

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('launches',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('dataset_pid', sa.String(length=500), nullable=False),
    sa.Column('facility_id', sa.String(length=64), nullable=True),
    sa.Column('service_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=True),
    sa.Column('server_name', sa.String(length=200), nullable=True),
    sa.Column('url', sa.String(length=2048), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.create_index('ix_launches_state', ['state'], unique=False)
        batch_op.create_index('ux_launches_key', ['person_id', 'idempotency_key'], unique=True)

    op.create_table('launch_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('launch_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['launch_id'], ['launches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('launch_events', schema=None) as batch_op:
        batch_op.create_index('ix_launch_events_launch', ['launch_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('launch_events', schema=None) as batch_op:
        batch_op.drop_index('ix_launch_events_launch')

    op.drop_table('launch_events')
    with op.batch_alter_table('launches', schema=None) as batch_op:
        batch_op.drop_index('ux_launches_key')
        batch_op.drop_index('ix_launches_state')

    op.drop_table('launches')
