"""replica lag functions: the read path asks a replica how far behind it is

image_catalogue_replica_lag() measures a standby's lag the way PostgreSQL's
documentation suggests (now minus the last replayed transaction's commit
time), except that a standby which has replayed all the WAL it received is
not behind at all: on an idle primary the last commit is old, yet nothing is
missing. On the primary it is 0. image_catalogue_assert_fresh(max) raises
SQLSTATE ICLAG when the lag exceeds max; app/db/reads.py sends it before each
read on a replica, in the same round trip. Functions replicate like tables.

Revision ID: d5e6f7a8b9c0
Revises: c9d3e8f1a2b4
Create Date: 2026-11-27 13:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd5e6f7a8b9c0'
down_revision = 'c9d3e8f1a2b4'
branch_labels = None
depends_on = None


def upgrade():
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
    op.execute("""
        CREATE OR REPLACE FUNCTION image_catalogue_assert_fresh(max_lag double precision)
        RETURNS void LANGUAGE plpgsql STABLE AS $$
        DECLARE
            lag double precision := image_catalogue_replica_lag();
        BEGIN
            IF lag > max_lag THEN
                RAISE EXCEPTION 'this replica is % s behind (limit % s)',
                    round(lag::numeric, 3), max_lag USING ERRCODE = 'ICLAG';
            END IF;
        END
        $$
    """)


def downgrade():
    op.execute('DROP FUNCTION image_catalogue_assert_fresh(double precision)')
    op.execute('DROP FUNCTION image_catalogue_replica_lag()')
