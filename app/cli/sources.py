"""`image-catalogue images forget-source`: retire a source."""

import click
from flask import current_app

from app.cli.group import images_cli
from app.db import db
from app.loading.sources import SourceBusy, SourceLock, forget_source


@images_cli.command("forget-source")
@click.argument("name")
@click.option(
    "--delete-images",
    is_flag=True,
    help="Also mark the source's images deleted (changes-since pollers learn of it).",
)
def forget_source_command(name, delete_images):
    """Forget source NAME: its mirror state (and lag alert) and its last load.

    Its images stay listed, released: the next load that writes one claims
    it. With --delete-images they are marked deleted instead. Refused while
    a follower of NAME runs.
    """
    try:
        with SourceLock(current_app.config["SQLALCHEMY_DATABASE_URI"], name):
            released, deleted = forget_source(db.session, name, delete_images=delete_images)
    except SourceBusy as busy:
        raise click.ClickException(str(busy)) from None
    click.echo(f"forgot source {name!r}: {released} images released, {deleted} marked deleted")
