"""add an index for every sort_key

Each index is (sort expression, created_at, id), the sort expression written
exactly as app/models.py:sort_expressions writes it (NULL as the lowest
value), so that a page in either direction, and its marker predicate, is read
in index order. created_at and id are served by ix_images_created_at_id and
the primary key.

Revision ID: 30072f2b8ab2
Revises: 9ffb09255691
Create Date: 2026-11-27 06:40:25.561707

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '30072f2b8ab2'
down_revision = '9ffb09255691'
branch_labels = None
depends_on = None

SORT_EXPRESSIONS = {
    'name': "coalesce(name, '')",
    'status': 'status',
    'container_format': "coalesce(container_format, '')",
    'disk_format': "coalesce(disk_format, '')",
    'size': 'coalesce(size, -1)',
    'updated_at': "coalesce(updated_at, '-infinity'::timestamptz)",
}


def upgrade():
    for key, expression in SORT_EXPRESSIONS.items():
        op.create_index(
            f'ix_images_{key}_sort', 'images',
            [sa.literal_column(expression), 'created_at', 'id'],
        )


def downgrade():
    for key in SORT_EXPRESSIONS:
        op.drop_index(f'ix_images_{key}_sort', table_name='images')
