"""The command groups (`images`, `tokens`), and the options several commands share.

A database that cannot be reached, or lacks this release's schema, is one
line, not a traceback.
"""

import click
import psycopg2.errors
import sqlalchemy as sa
from flask.cli import AppGroup

from app.db import error_summary
from app.loading.sources import name_problem

# What a database never migrated, or migrated by an older release, answers.
SCHEMA_BEHIND = (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn)


class CatalogueGroup(AppGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except sa.exc.OperationalError as error:
            raise click.ClickException(
                f"the catalogue's database could not be reached ({error_summary(error)}); "
                "nothing was changed"
            ) from None
        except sa.exc.ProgrammingError as error:
            if not isinstance(error.orig, SCHEMA_BEHIND):
                raise
            raise click.ClickException(
                f"a table or column is missing ({error_summary(error)}); nothing was changed "
                "(the catalogue's database lacks this release's schema: run image-catalogue "
                "db upgrade)"
            ) from None


images_cli = CatalogueGroup("images", help="Load images into the catalogue.")
tokens_cli = CatalogueGroup("tokens", help="Manage API tokens.")


def defaulted_option(name, kind, default, help):
    """An option of type `kind` whose --help shows its default."""
    return click.option(name, type=kind, default=default, show_default=True, help=help)


def source_option(default, help):
    """`--source NAME`: the source a command writes for (app/loading/sources.py)."""

    def checked(ctx, param, value):
        problem = name_problem(value)
        if problem:
            raise click.BadParameter(problem)
        return value

    return click.option("--source", default=default, show_default=True, help=help, callback=checked)


def seconds_option(name, default, help, minimum=0.0):
    """A `--name SECONDS` option: a number of seconds of at least `minimum`."""
    return defaulted_option(name, click.FloatRange(min=minimum), default, help)
