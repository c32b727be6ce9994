"""mailbox leases: one daemon per mailbox when several share PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A row per mailbox names the daemon that may poll it and until when; a daemon that
dies stops renewing and another takes the mailbox over after ``expires_at``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox"),
    )


def downgrade() -> None:
    op.drop_table("mailbox_leases")
