"""run queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 07:30:00.000000

``queuedrun``: protocols waiting for their rig (``chiptwin queue add``); a lab supervisor
claims the next due entry of a free rig and starts its runner (store.repositories.queue).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queuedrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rig_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('protocol_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('protocol_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('protocol_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('not_before_utc_s', sa.Float(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('queued_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('queued_utc_s', sa.Float(), nullable=False),
    sa.Column('ended_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ended_utc_s', sa.Float(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['protocolrun.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('queuedrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queuedrun_rig_name'), ['rig_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_queuedrun_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('queuedrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queuedrun_state'))
        batch_op.drop_index(batch_op.f('ix_queuedrun_rig_name'))
    op.drop_table('queuedrun')
