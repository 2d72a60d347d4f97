"""The commands' group: a database that cannot be reached is one line, not a traceback."""

import click
import sqlalchemy as sa
from flask.cli import AppGroup


class CatalogueGroup(AppGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except sa.exc.OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0]
            raise click.ClickException(
                f"the catalogue's database could not be reached ({reason}); nothing was changed"
            ) from None
