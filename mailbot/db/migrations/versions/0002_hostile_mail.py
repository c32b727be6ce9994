"""hostile mail: quarantine bookkeeping and bounce suppressions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Quarantine rows learn the mailbox's time of the mail (a retry keeps its deadlines),
the folder it was moved to, and the outcome of retries; hard bounces suppress an
address for a while (``suppressions``).
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('moved_to', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('retries', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('result', sa.Text(), nullable=True))

    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )


def downgrade() -> None:
    op.drop_table('suppressions')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_column('result')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('retries')
        batch_op.drop_column('moved_to')
        batch_op.drop_column('received_at')
