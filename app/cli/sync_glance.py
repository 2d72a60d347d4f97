"""`image-catalogue images sync-glance`: mirror a Glance database, once or continuously."""

import datetime as dt
import signal
import sys
import threading

import click
import sqlalchemy as sa
from flask import current_app

from app.cli.group import images_cli, seconds_option, source_option
from app.db import db, error_summary
from app.loading import mirror
from app.loading.glance_source import GlanceSchemaError, GlanceSource, legacy_state_name
from app.loading.sources import SourceBusy, SourceLock
from app.loading.upsert import SourceConflict

# What ends a command in one line (exit status 1).
REFUSALS = (GlanceSchemaError, mirror.MirrorRefused, SourceBusy, SourceConflict)


@images_cli.command("sync-glance")
@click.argument("source_url", required=False)
@source_option("glance", "The mirror's source name: the images it loads are this source's.")
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
@click.option(
    "--allow-deletions",
    type=click.IntRange(min=0),
    default=0,
    help="--prune: mark up to this many images deleted, past the mass-deletion guard.",
)
@click.option("--dry-run", is_flag=True, help="Say what a run would change; change nothing.")
def sync_glance(source_url, source, follow, prune, allow_deletions, dry_run, **schedule):
    """Mirror the images of the Glance database at SOURCE_URL into the catalogue.

    SOURCE_URL is an SQLAlchemy URL (mysql+pymysql://... or postgresql://...);
    without it, [glance_mirror] connection of the configuration (or
    GLANCE_DATABASE_URL), which keeps the password out of `ps`. The source is
    only ever read. Images come across as Glance v1 showed them;
    a run changes only what differs, one batch per transaction, and prints
    `N inserted, M updated, K unchanged`. With --follow it then keeps
    applying what changed (docs/operations.md, "Glance mirror").
    """
    if follow and prune:
        raise click.UsageError("--prune is for one run; --follow reconciles on its own")
    if follow and dry_run:
        raise click.UsageError("--dry-run is for one run, not for --follow")
    if allow_deletions and not prune:
        raise click.UsageError("--allow-deletions goes with --prune")
    source_url = source_url or current_app.config["GLANCE_DATABASE_URL"]
    if not source_url:
        raise click.UsageError(
            "give SOURCE_URL, or set [glance_mirror] connection (GLANCE_DATABASE_URL)"
        )
    try:
        if follow:
            _follow(source_url, source, **schedule)
        else:
            _sync_once(source_url, source, prune=prune, allow=allow_deletions, dry_run=dry_run)
    except (*REFUSALS, mirror.FollowerGaveUp) as error:
        raise click.ClickException(str(error)) from None
    except sa.exc.OperationalError as error:
        raise click.ClickException(
            f"a database could not be reached: {error_summary(error)}"
        ) from None


def _sync_once(source_url, name, *, prune, allow, dry_run):
    source = _connect(source_url, name)
    if dry_run:
        summary = mirror.sync_all(db.session, source, dry_run=True)
        click.echo(f"would be: {summary}")
        if prune:
            marked, removed = mirror.reconcile(
                db.session, source, guard=_guard(), allow_deletions=allow, dry_run=True
            )
            click.echo(f"purged in Glance, would be: {marked} marked deleted, {removed} removed")
        return
    with SourceLock(_catalogue_url(), name):
        mirror.forget_legacy_state(db.session, legacy_state_name(source_url))
        with click.progressbar(
            length=source.count_images(), label="Mirroring", show_pos=True, file=sys.stderr
        ) as bar:
            summary = mirror.sync_all(db.session, source, on_batch=bar.update)
        click.echo(summary)
        if prune:
            marked, removed = mirror.reconcile(
                db.session, source, guard=_guard(), allow_deletions=allow
            )
            click.echo(f"purged in Glance: {marked} marked deleted, {removed} removed")


def _follow(source_url, name, *, interval, overlap, reconcile_every):
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    mirror.forget_legacy_state(db.session, legacy_state_name(source_url))
    lock = SourceLock(_catalogue_url(), name)
    try:
        mirror.follow(
            db.session,
            lambda: _connect(source_url, name),
            lock,
            interval=interval,
            overlap=dt.timedelta(seconds=overlap),
            reconcile_every=reconcile_every,
            guard=_guard(),
            give_up=current_app.config["MIRROR_GIVE_UP_SECONDS"],
            stop=stop,
            log=current_app.logger,
        )
    finally:
        lock.release()


def _connect(source_url, name):
    config = current_app.config
    return GlanceSource(
        source_url,
        name=name,
        connect_timeout=config["GLANCE_CONNECT_TIMEOUT"],
        read_timeout=config["GLANCE_READ_TIMEOUT"],
    )


def _guard():
    config = current_app.config
    return mirror.DeletionGuard(
        share=config["MIRROR_MAX_DELETION_SHARE"], floor=config["MIRROR_DELETION_FLOOR"]
    )


def _catalogue_url():
    return current_app.config["SQLALCHEMY_DATABASE_URI"]
