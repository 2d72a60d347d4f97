"""glance mirror state: the follower's watermark and last passes

Revision ID: c9d3e8f1a2b4
Revises: a41f0c2b7e65
Create Date: 2026-11-27 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9d3e8f1a2b4'
down_revision = 'a41f0c2b7e65'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'glance_mirrors',
        sa.Column('source', sa.String(length=512), nullable=False),
        sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_pass_seconds', sa.Float(), nullable=True),
        sa.Column('last_reconcile_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('source'),
    )


def downgrade():
    op.drop_table('glance_mirrors')
