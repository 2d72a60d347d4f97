"""replica lag unknown is not fresh: a standby that has not streamed since it started refuses reads

image_catalogue_replica_lag() (d5e6f7a8b9c0) counted a standby whose WAL
receiver had not received anything since it started (pg_last_wal_receive_lsn()
is NULL: just restarted, or not connected to its primary) as not behind at
all, and one that had received WAL it had not replayed, with no replayed
commit to date it by, as 0 s behind: either could serve a catalogue as old
as its last shutdown. Both now count as infinitely behind, so
image_catalogue_assert_fresh refuses the read until the standby streams and
has caught up within the bound. Expand only: the same functions, one more
case each; the previous release's code calls them as before.

Revision ID: 4f5a6b7c8d9e
Revises: 3e4f5a6b7c8d
Create Date: 2026-12-06 22:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '4f5a6b7c8d9e'
down_revision = '3e4f5a6b7c8d'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE OR REPLACE FUNCTION image_catalogue_replica_lag() RETURNS double precision
        LANGUAGE sql STABLE AS $$
            SELECT CASE
                WHEN NOT pg_is_in_recovery() THEN 0::float8
                WHEN pg_last_wal_receive_lsn() IS NULL THEN 'Infinity'::float8
                WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                ELSE coalesce(
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                    'Infinity'::float8)
            END
        $$
    """)


def downgrade():
    op.execute("""
        CREATE OR REPLACE FUNCTION image_catalogue_replica_lag() RETURNS double precision
        LANGUAGE sql STABLE AS $$
            SELECT CASE
                WHEN NOT pg_is_in_recovery() THEN 0
                WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                    THEN 0
                ELSE coalesce(
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8
            END
        $$
    """)
