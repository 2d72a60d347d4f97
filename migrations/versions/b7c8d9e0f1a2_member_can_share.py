"""member can_share: whether a member may share the image further (Glance v1's members API)

Expand only: a column with a constant default, which PostgreSQL adds without
rewriting the table; the previous release's code never reads it.

Revision ID: b7c8d9e0f1a2
Revises: f0a1b2c3d4e5
Create Date: 2026-11-29 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c8d9e0f1a2'
down_revision = 'f0a1b2c3d4e5'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'image_members',
        sa.Column('can_share', sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade():
    op.drop_column('image_members', 'can_share')
