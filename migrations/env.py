import logging
from logging.config import fileConfig

from flask import current_app
from sqlalchemy.exc import OperationalError

from alembic import context
from app.db.migrating import take_migration_lock

config = context.config

fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')
LOCK_NOT_AVAILABLE = '55P03'


def get_engine():
    return current_app.extensions['migrate'].db.engine


def get_engine_url():
    return get_engine().url.render_as_string(hide_password=False).replace('%', '%%')


config.set_main_option('sqlalchemy.url', get_engine_url())
# The models' MetaData, which `db migrate` (autogenerate) and `db check` compare with.
target_db = current_app.extensions['migrate'].db


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Write the migrations' SQL instead of running it (`db upgrade --sql`)."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


def compared_by_autogenerate(object, name, type_, reflected, compare_to):
    """Leave expression indexes out of `db check`: alembic drops their COLLATE
    when it reflects them, so they would always differ.
    tests/test_migrations.py compares them with pg_get_indexdef instead."""
    if type_ == 'index' and name and name.endswith('_sort'):
        return False
    return True


def run_migrations_online():
    """Run the migrations on the database, one transaction each, under the migration lock."""

    # `db migrate` with no schema change writes no empty revision.
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        # Hosts running db upgrade at once take turns (app/db/migrating.py).
        take_migration_lock(connection, logger.warning)
        lock_timeout = current_app.config['MIGRATION_LOCK_TIMEOUT_MS']
        # DDL blocked by a reader gives up after lock_timeout rather than
        # queueing every request behind itself; index builds may take long.
        connection.exec_driver_sql(f'SET lock_timeout = {int(lock_timeout)}')
        connection.exec_driver_sql('SET statement_timeout = 0')
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=get_metadata(),
                include_object=compared_by_autogenerate,
                transaction_per_migration=True,
                **conf_args
            )

            with context.begin_transaction():
                context.run_migrations()
        except OperationalError as error:
            if getattr(error.orig, 'pgcode', None) != LOCK_NOT_AVAILABLE:
                raise
            # Flask-Migrate prints a RuntimeError as one line and exits 1.
            raise RuntimeError(
                f'a migration gave up after waiting {lock_timeout} ms'
                ' ([database] migration_lock_timeout_ms) for a lock that another transaction'
                ' holds; that migration changed nothing. Run db upgrade again once'
                ' the transaction has ended.'
            ) from None
        finally:
            # Closed rather than pooled: the lock and the settings end with it.
            connection.invalidate()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
