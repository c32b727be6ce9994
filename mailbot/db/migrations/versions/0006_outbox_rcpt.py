"""outbox.rcpt: the first recipient, lowercased and indexed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Loop protection counts the acknowledgements already sent to one address. With the
address only inside the ``to_addrs`` JSON, every new case had to read every ack of the
window (all of them, while a backlog drains); an indexed column answers it directly.
Existing rows are filled from their ``to_addrs``.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("rcpt", sa.String(length=320), nullable=True))
    op.create_index("ix_outbox_rcpt", "outbox", ["rcpt", "kind"])
    outbox = sa.table("outbox", sa.column("id", sa.Integer()), sa.column("to_addrs", sa.JSON()),
                      sa.column("rcpt", sa.String()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.to_addrs)).all()
    updates = []
    for row_id, to_addrs in rows:
        addresses = json.loads(to_addrs) if isinstance(to_addrs, str) else to_addrs
        if addresses:
            updates.append({"row_id": row_id, "value": str(addresses[0]).lower()[:320]})
    if updates:
        connection.execute(outbox.update().where(outbox.c.id == sa.bindparam("row_id"))
                           .values(rcpt=sa.bindparam("value")), updates)


def downgrade() -> None:
    op.drop_index("ix_outbox_rcpt", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("rcpt")
