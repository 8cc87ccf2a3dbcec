"""step index of fits and proposals

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 05:00:00.000000

A resumed calibrate or propose step looks up the row it made by (run, step index). The index
was inside ``data_selection_json`` / ``design_json``, so finding it decoded every row of the
run; it is now a real, indexed column, filled from the JSON for rows written before.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = {"fit": "data_selection_json", "proposal": "design_json"}


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('step_index', sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_step_index'), ['step_index'], unique=False)
    connection = op.get_bind()
    for table, column in TABLES.items():
        rows = connection.execute(sa.text(f"SELECT id, {column} FROM {table}")).all()
        for row_id, document in rows:
            try:
                step = json.loads(document or "{}").get("step")
            except (ValueError, AttributeError):
                step = None
            if isinstance(step, int):
                connection.execute(sa.text(f"UPDATE {table} SET step_index = :step WHERE id = :id"),
                                   {"step": step, "id": row_id})


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_step_index'))
            batch_op.drop_column('step_index')
