"""image sources and hidden images: whose each image is, and Glance's os_hidden

Expand only (the previous release's code ignores the new columns):
- images.source: the source that loaded the image (a Glance mirror's name or
  a named import); NULL for images loaded before this release, which the
  next load that writes them claims. A reconcile, a prune and forget-source
  touch only their own source's images (ix_images_source, built
  concurrently).
- images.hidden: Glance's os_hidden, left out of default listings.
- glance_mirrors.schema_signature: the Glance schema the last pass read (a
  change makes the follower do a full pass); refused_deletions: how many
  deletions the last reconcile refused to apply (the mass-deletion guard).
- catalogue_loads.source may hold a source name of 64 characters.

Revision ID: f0a1b2c3d4e5
Revises: e7f8a9b0c1d2
Create Date: 2026-11-29 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from app.db.migrating import create_index_concurrently, drop_index_concurrently


# revision identifiers, used by Alembic.
revision = 'f0a1b2c3d4e5'
down_revision = 'e7f8a9b0c1d2'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('images', sa.Column('source', sa.String(length=64), nullable=True))
    op.add_column(
        'images',
        sa.Column('hidden', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column('glance_mirrors', sa.Column('schema_signature', sa.Text(), nullable=True))
    op.add_column('glance_mirrors', sa.Column('refused_deletions', sa.Integer(), nullable=True))
    op.alter_column(
        'catalogue_loads', 'source', type_=sa.String(length=64), existing_nullable=False
    )
    create_index_concurrently('ix_images_source', 'images', ['source'])


def downgrade():
    drop_index_concurrently('ix_images_source')
    op.alter_column(
        'catalogue_loads', 'source', type_=sa.String(length=32), existing_nullable=False
    )
    op.drop_column('glance_mirrors', 'refused_deletions')
    op.drop_column('glance_mirrors', 'schema_signature')
    op.drop_column('images', 'hidden')
    op.drop_column('images', 'source')
