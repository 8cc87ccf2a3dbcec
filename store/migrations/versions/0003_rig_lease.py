"""rig lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00.000000

``riglease``: one row per rig that a runner holds (store.lease), so that two runners never
drive the same serial ports and Modbus units. The rig name is the key: the lease is taken
before the runner has written anything, so there may be no ``rig`` row to point at yet.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('riglease',
    sa.Column('rig_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('holder_host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('holder_pid', sa.Integer(), nullable=False),
    sa.Column('holder_command', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('acquired_utc_s', sa.Float(), nullable=False),
    sa.Column('heartbeat_utc_s', sa.Float(), nullable=False),
    sa.Column('expires_utc_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('rig_name')
    )
    with op.batch_alter_table('riglease', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_riglease_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('riglease', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_riglease_run_id'))
    op.drop_table('riglease')
