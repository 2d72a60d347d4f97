"""`flask --app wsgi images sync-glance`: mirror a Glance database, once or continuously."""

import datetime as dt
import signal
import sys
import threading

import click
import sqlalchemy as sa
from flask import current_app

from app.cli.group import images_cli, seconds_option
from app.db import db
from app.loading import mirror
from app.loading.glance_source import GlanceSchemaError, GlanceSource


@images_cli.command("sync-glance")
@click.argument("source_url", envvar="GLANCE_DATABASE_URL")
@click.option("--follow", is_flag=True, help="Keep mirroring the changes, until stopped.")
@seconds_option("--interval", 10, "--follow: seconds between passes.", minimum=0.1)
@seconds_option(
    "--overlap",
    300,
    "--follow: seconds before the watermark read again (late commits, clock skew).",
)
@seconds_option(
    "--reconcile-every",
    3600,
    "--follow: seconds between checks of every id for images Glance purged.",
    minimum=1,
)
@click.option("--prune", is_flag=True, help="Also handle images Glance purged (one run).")
def sync_glance(source_url, follow, interval, overlap, reconcile_every, prune):
    """Mirror the images of the Glance database at SOURCE_URL into the catalogue.

    SOURCE_URL is an SQLAlchemy URL (mysql+pymysql://... or postgresql://...;
    or set GLANCE_DATABASE_URL, which keeps the password out of `ps`). The
    source is only ever read. Images come across as Glance v1 showed them;
    a run changes only what differs, one batch per transaction, and prints
    `N inserted, M updated, K unchanged`. With --follow it then keeps
    applying what changed (docs/operations.md, "Glance mirror").
    """
    if follow and prune:
        raise click.UsageError("--prune is for one run; --follow reconciles on its own")
    if follow:
        _follow(source_url, interval, overlap, reconcile_every)
        return
    try:
        source = GlanceSource(source_url)
        with click.progressbar(
            length=source.count_images(), label="Mirroring", show_pos=True, file=sys.stderr
        ) as bar:
            summary = mirror.sync_all(db.session, source, on_batch=bar.update)
        click.echo(summary)
        if prune:
            marked, removed = mirror.reconcile(db.session, source)
            click.echo(f"purged in Glance: {marked} marked deleted, {removed} removed")
    except (GlanceSchemaError, mirror.MirrorRefused) as error:
        raise click.ClickException(str(error)) from None
    except sa.exc.OperationalError as error:
        raise click.ClickException(f"a database could not be reached: {error.orig}") from None


def _follow(source_url, interval, overlap, reconcile_every):
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        mirror.follow(
            db.session,
            source_url,
            interval=interval,
            overlap=dt.timedelta(seconds=overlap),
            reconcile_every=reconcile_every,
            stop=stop,
            log=current_app.logger,
        )
    except GlanceSchemaError as error:
        raise click.ClickException(str(error)) from None
