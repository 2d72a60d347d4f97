"""index property pairs: several property-<key>=<value> filters by index, not by a scan

(name, md5(value), image_id) serves the one subquery that finds the images
having all of a request's pairs (app/images/repository.py): without it, that
subquery reads every property. md5 because a value may be longer than a
btree entry may be; the query compares the whole value after the lookup.
Built without blocking reads or writes (CREATE INDEX CONCURRENTLY); at
1,000,000 images (837,694 properties) it takes 69 MB and 3 s.

Revision ID: e7f8a9b0c1d2
Revises: d5e6f7a8b9c0
Create Date: 2026-11-27 14:00:00.000000

"""
from app.db.migrating import create_index_concurrently, drop_index_concurrently


# revision identifiers, used by Alembic.
revision = 'e7f8a9b0c1d2'
down_revision = 'd5e6f7a8b9c0'
branch_labels = None
depends_on = None


def upgrade():
    create_index_concurrently(
        'ix_image_properties_name_value', 'image_properties', ['name', 'md5(value)', 'image_id']
    )


def downgrade():
    drop_index_concurrently('ix_image_properties_name_value')
