"""`image-catalogue images import|generate`: load the catalogue."""

import contextlib
import os
import sys

import click
from flask import current_app

from app.cli.group import defaulted_option, images_cli, source_option
from app.db import db
from app.images.timestamps import parse_iso8601
from app.loading import jsonl, synthetic, upsert
from app.loading.changes import prune_departures

DEFAULT_UNTIL = "2026-11-01T00:00:00Z"


@images_cli.command("import")
@click.argument("path", type=click.Path(allow_dash=True, dir_okay=False))
@source_option("import", "The source the images belong to (an image of another is refused).")
def import_images(path, source):
    """Import images from a JSON Lines file (PATH, or - for stdin).

    Each line holds one image with the 18 listing fields, plus optional
    "members" (project ids) and "hidden". Images are upserted by id; the whole
    file is validated first and any invalid line aborts the import unchanged.
    """
    with _lines_with_progress(path) as lines:
        summary = _load_or_exit(jsonl.parse_lines(lines), source=source)
    click.echo(summary)


@images_cli.command("generate")
@click.option("--count", type=click.IntRange(min=0), required=True, help="How many images.")
@defaulted_option("--seed", int, 0, "Same seed, same catalogue.")
@defaulted_option(
    "--projects",
    click.IntRange(min=1),
    100,
    "How many owner projects (project-0000, project-0001, ...).",
)
@defaulted_option(
    "--until",
    str,
    DEFAULT_UNTIL,
    "Newest timestamp (ISO 8601); images span the two years before it.",
)
def generate_images(count, seed, projects, until):
    """Load a deterministic synthetic catalogue (upserted by id)."""
    try:
        until_at = parse_iso8601(until)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--until") from None
    records = synthetic.generate_records(count, seed=seed, projects=projects, until=until_at)
    with click.progressbar(records, length=count, label="Generating", file=sys.stderr) as bar:
        summary = _load_or_exit(bar, source="generate")
    click.echo(summary)


@images_cli.command("prune-changes")
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    help="Seconds (default: [change_feed] retention_seconds, CHANGE_RETENTION_SECONDS).",
)
def prune_changes(older_than):
    """Forget the change feed's tombstones older than the retention time (a systemd timer runs it).

    A cursor from before the newest one forgotten then answers 410 Gone (re-list).
    """
    if older_than is None:
        older_than = current_app.config["CHANGE_RETENTION_SECONDS"]
    pruned, through = prune_departures(db.session, older_than)
    click.echo(
        f"pruned {pruned} tombstone(s) older than {older_than} s; cursors from before change "
        f"{through} answer 410"
    )


# click draws progress bars only on a terminal; elsewhere it prints the label once.
@contextlib.contextmanager
def _lines_with_progress(path):
    if path == "-":
        with click.progressbar(
            sys.stdin.buffer, label="Validating lines", show_pos=True, file=sys.stderr
        ) as lines:
            yield lines
        return
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        with click.progressbar(length=size, label="Validating", file=sys.stderr) as bar:
            yield _tracked(stream, bar)


def _tracked(stream, bar):
    for line in stream:
        bar.update(len(line))
        yield line


def _load_or_exit(records, source):
    try:
        return upsert.load(db.session, records, source=source, on_staged=_announce_writing)
    except jsonl.ImportRejected as rejected:
        _reject(rejected.errors)
    except upsert.RepeatedIds as repeated:
        _reject(
            [
                f"line {positions[1]}: id {image_id} already appears on line {positions[0]}"
                for image_id, positions in repeated.repeats
            ]
        )
    except upsert.SourceConflict as conflict:
        raise click.ClickException(str(conflict)) from None


def _reject(errors):
    click.echo(f"\nImport rejected, nothing was changed: {len(errors)} invalid line(s)", err=True)
    for line in errors[: jsonl.ERRORS_SHOWN]:
        click.echo(f"  {line}", err=True)
    hidden = len(errors) - jsonl.ERRORS_SHOWN
    if hidden > 0:
        click.echo(f"  ... and {hidden} more", err=True)
    sys.exit(1)


def _announce_writing(count):
    click.echo(f"\nWriting {count} images to the database...", err=True)
