"""run wall times

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 12:00:00.000000

``protocolrun.started_wall_utc_s`` / ``ended_wall_utc_s``: when a run started and ended on
the wall clock. An accelerated run's own times are on its rig's (simulated) clock; a person
reads the wall times, and the panel shows the run's events relative to its start.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('protocolrun', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_wall_utc_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('ended_wall_utc_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('protocolrun', schema=None) as batch_op:
        batch_op.drop_column('ended_wall_utc_s')
        batch_op.drop_column('started_wall_utc_s')
