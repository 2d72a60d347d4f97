"""sort text keys by code point (COLLATE "C"), whatever the server's locale

The name, status, container_format and disk_format sort indexes are rebuilt
on the expressions of app/models.py:sort_expressions, which now carry
COLLATE "C": the order is the same on every server, and byte comparison is
the cheapest. Each index is built beside the old one without blocking reads
or writes (CREATE INDEX CONCURRENTLY), the old one dropped the same way, and
the new one renamed into its place.

Revision ID: 7b2e4c1d9a03
Revises: 5d1c2e7a9b30
Create Date: 2026-11-27 11:30:00.000000

"""
from alembic import op

from app.db.migrating import create_index_concurrently, drop_index_concurrently


# revision identifiers, used by Alembic.
revision = '7b2e4c1d9a03'
down_revision = '5d1c2e7a9b30'
branch_labels = None
depends_on = None

EXPRESSIONS = {
    'name': "coalesce(name, '')",
    'status': 'status',
    'container_format': "coalesce(container_format, '')",
    'disk_format': "coalesce(disk_format, '')",
}


def upgrade():
    for key, expression in EXPRESSIONS.items():
        _rebuild(key, f'({expression}) COLLATE "C"')


def downgrade():
    for key, expression in EXPRESSIONS.items():
        _rebuild(key, expression)


def _rebuild(key, expression):
    name = f'ix_images_{key}_sort'
    create_index_concurrently(f'{name}_new', 'images', [expression, 'created_at', 'id'])
    drop_index_concurrently(name)
    op.execute(f'ALTER INDEX {name}_new RENAME TO {name}')
