"""record the latest load of each source (catalogue freshness in /metrics)

Revision ID: a41f0c2b7e65
Revises: 7b2e4c1d9a03
Create Date: 2026-11-27 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a41f0c2b7e65'
down_revision = '7b2e4c1d9a03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'catalogue_loads',
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column(
            'finished_at', sa.DateTime(timezone=True),
            server_default=sa.text('clock_timestamp()'), nullable=False,
        ),
        sa.Column('inserted', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('source'),
    )


def downgrade():
    op.drop_table('catalogue_loads')
