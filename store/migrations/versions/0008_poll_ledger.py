"""poll ledger

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:23:28.445456

``pollsession``: each runner process's poller on a run (start, clean stop); ``pollschedule``: each
channel's slot grid in a session; ``pollgap``: slots served without a reading (late: skipped;
no_value: the device never answered yet). With the readings they account for every poll slot:
expected = stored + skipped + down + lost (store.repositories.polls).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pollsession',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_utc_s', sa.Float(), nullable=False),
    sa.Column('stopped_utc_s', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['protocolrun.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pollsession', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pollsession_run_id'), ['run_id'], unique=False)

    op.create_table('pollgap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('first_slot', sa.Integer(), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channel.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['pollsession.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pollgap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pollgap_session_id'), ['session_id'], unique=False)

    op.create_table('pollschedule',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('first_due_utc_s', sa.Float(precision=53), nullable=False),
    sa.Column('period_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channel.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['pollsession.id'], ),
    sa.PrimaryKeyConstraint('session_id', 'channel_id')
    )


def downgrade() -> None:
    op.drop_table('pollschedule')
    with op.batch_alter_table('pollgap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pollgap_session_id'))

    op.drop_table('pollgap')
    with op.batch_alter_table('pollsession', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pollsession_run_id'))

    op.drop_table('pollsession')
