"""lab supervisor

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 12:40:00.000000

``labsupervisor``: each lab machine's supervisor (`chiptwin lab serve`) and its heartbeat;
``rigowner``: which supervisor owns which rig (one owner per rig, store.ownership).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('labsupervisor',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_utc_s', sa.Float(), nullable=False),
    sa.Column('heartbeat_utc_s', sa.Float(), nullable=False),
    sa.Column('expires_utc_s', sa.Float(), nullable=False),
    sa.Column('health_json', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('rigowner',
    sa.Column('rig_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('supervisor_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('since_utc_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['supervisor_name'], ['labsupervisor.name'], ),
    sa.PrimaryKeyConstraint('rig_name')
    )
    with op.batch_alter_table('rigowner', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rigowner_supervisor_name'), ['supervisor_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rigowner', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rigowner_supervisor_name'))
    op.drop_table('rigowner')
    op.drop_table('labsupervisor')
