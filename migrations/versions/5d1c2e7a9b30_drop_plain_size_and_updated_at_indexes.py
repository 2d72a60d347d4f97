"""drop the plain size and updated_at indexes

The size range and changes-since filters are now written on the sort
expressions (coalesce(size, -1), coalesce(updated_at, '-infinity')), so
ix_images_size_sort and ix_images_updated_at_sort serve them; the plain
indexes only cost writes.

Revision ID: 5d1c2e7a9b30
Revises: 30072f2b8ab2
Create Date: 2026-11-27 07:35:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5d1c2e7a9b30'
down_revision = '30072f2b8ab2'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_images_size', table_name='images')
    op.drop_index('ix_images_updated_at', table_name='images')


def downgrade():
    op.create_index('ix_images_updated_at', 'images', ['updated_at'])
    op.create_index('ix_images_size', 'images', ['size'])
