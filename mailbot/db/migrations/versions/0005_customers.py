"""customer directory: customers table, cases.registered

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

``customers`` is what ``mailbot customers import`` loads (one row per address,
stored lowercased, as the pipeline compares senders). ``cases.registered`` says
whether the sender was known when the case opened; existing cases get ``true`` so
that years of history do not suddenly read as strangers' mail.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organization", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=10), nullable=True),
        sa.Column("service_level", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("registered", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("registered")
    op.drop_table("customers")
