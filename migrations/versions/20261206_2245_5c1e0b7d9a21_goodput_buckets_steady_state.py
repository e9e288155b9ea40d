"""goodput per workload bucket, steady-state point figures

Revision ID: 5c1e0b7d9a21
Revises: c7e1a2f4b9d3
Create Date: 2026-12-06 22:45:00

benchmark_runs.bucket: the (input length x output length) bucket a goodput figure is for; ''
(every existing row) means the whole workload, as before. benchmark_points: the steady-state
output tok/s and the window's figures beside the whole-run ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e0b7d9a21"
down_revision: str | None = "c7e1a2f4b9d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("benchmark_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bucket", sa.String(length=64), server_default="", nullable=False)
        )
    with op.batch_alter_table("benchmark_points", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("steady_output_tokens_per_second", sa.Double(), nullable=True)
        )
        batch_op.add_column(sa.Column("steady", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("benchmark_points", schema=None) as batch_op:
        batch_op.drop_column("steady")
        batch_op.drop_column("steady_output_tokens_per_second")
    with op.batch_alter_table("benchmark_runs", schema=None) as batch_op:
        batch_op.drop_column("bucket")
