"""change numbers and departures: the change feed's apply-ordered numbers and tombstones

Expand only (the previous release's code ignores the new column and tables):
- images.change: the change number of each image's latest change; 0 for the
  images already there (a constant default, added without rewriting the
  table), ix_images_change_id built concurrently.
- catalogue_state: one row, the latest change number (taken in commit order
  by locking the row), this catalogue's deployment id, the key that signs
  feed cursors, up to which change tombstones were pruned, and the latest
  change a changes-since poller cannot see (it must list again).
- image_departures: who stopped seeing which image at which change.
- image_catalogue_change_number(): the transaction's change number, taken
  at its first call (app/loading/changes.py); and a trigger on each image
  table that takes it before any other write, so that any write (a 1.2
  writer still running, a hand-written fix) changes the number that ETags
  and repeated answers are checked against (app/web/answers.py). Such a
  write does not number the images it changes, so the feed learns of them
  only at their next change: upgrade the writers with the migration.

Revision ID: 3e4f5a6b7c8d
Revises: b7c8d9e0f1a2
Create Date: 2026-12-06 21:00:00.000000

"""
import secrets
import uuid

from alembic import op
import sqlalchemy as sa

from app.db.migrating import create_index_concurrently, drop_index_concurrently


IMAGE_TABLES = ('images', 'image_properties', 'image_members')

# The first call in a transaction takes the next number, which leaves the
# state row locked until the transaction ends; later calls return it.
CHANGE_NUMBER_FUNCTION = """
CREATE FUNCTION image_catalogue_change_number() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    taken text := current_setting('image_catalogue.change', true);
    number bigint;
BEGIN
    IF taken <> '' THEN
        RETURN taken::bigint;
    END IF;
    UPDATE catalogue_state SET last_change = last_change + 1 WHERE id = 1
    RETURNING last_change INTO number;
    PERFORM set_config('image_catalogue.change', number::text, true);
    RETURN number;
END
$$
"""

COUNT_CHANGE_FUNCTION = """
CREATE FUNCTION image_catalogue_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM image_catalogue_change_number();
    RETURN NULL;
END
$$
"""

# revision identifiers, used by Alembic.
revision = '3e4f5a6b7c8d'
down_revision = 'b7c8d9e0f1a2'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, though never null: a 1.2 loader stages rows in a temporary
    # table made LIKE images, which copies NOT NULL but not the default, and
    # its COPY leaves `change` out.
    op.add_column(
        'images', sa.Column('change', sa.BigInteger(), server_default='0', nullable=True)
    )
    state = op.create_table(
        'catalogue_state',
        sa.Column('id', sa.SmallInteger(), nullable=False),
        sa.Column('last_change', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('deployment', sa.Uuid(), nullable=False),
        sa.Column('cursor_key', sa.LargeBinary(), nullable=False),
        sa.Column('pruned_through', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('relist_change', sa.BigInteger(), server_default='0', nullable=False),
        sa.CheckConstraint('id = 1', name='ck_catalogue_state_one_row'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(
        state, [{'id': 1, 'deployment': uuid.uuid4(), 'cursor_key': secrets.token_bytes(32)}]
    )
    op.create_table(
        'image_departures',
        sa.Column('image_id', sa.Uuid(), nullable=False),
        sa.Column('audience', sa.Text(), nullable=False),
        sa.Column('change', sa.BigInteger(), nullable=False),
        sa.Column(
            'departed_at',
            sa.DateTime(timezone=True),
            server_default=sa.text('now()'),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint('image_id', 'audience'),
    )
    op.create_index(
        'ix_image_departures_change_image_id', 'image_departures', ['change', 'image_id']
    )
    op.create_index('ix_image_departures_departed_at', 'image_departures', ['departed_at'])
    op.execute(CHANGE_NUMBER_FUNCTION)
    op.execute(COUNT_CHANGE_FUNCTION)
    for table in IMAGE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_change_number"
            f" BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION image_catalogue_count_change()"
        )
    create_index_concurrently('ix_images_change_id', 'images', ['change', 'id'])


def downgrade():
    drop_index_concurrently('ix_images_change_id')
    for table in IMAGE_TABLES:
        op.execute(f"DROP TRIGGER {table}_change_number ON {table}")
    op.execute("DROP FUNCTION image_catalogue_count_change()")
    op.execute("DROP FUNCTION image_catalogue_change_number()")
    op.drop_table('image_departures')
    op.drop_table('catalogue_state')
    op.drop_column('images', 'change')
