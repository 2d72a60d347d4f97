"""`flask --app wsgi images ...`: load the catalogue and check its query plans."""

import contextlib
import os
import sys

import click

from app.cli.group import CatalogueGroup
from app.db import db
from app.images import plans
from app.images.timestamps import parse_iso8601
from app.loading import jsonl, synthetic, upsert

images_cli = CatalogueGroup("images", help="Load images into the catalogue.")
DEFAULT_UNTIL = "2026-11-01T00:00:00Z"


@images_cli.command("import")
@click.argument("path", type=click.Path(allow_dash=True, dir_okay=False))
def import_images(path):
    """Import images from a JSON Lines file (PATH, or - for stdin).

    Each line holds one image with the 18 listing fields, plus optional
    "members" (project ids). Images are upserted by id; the whole file is
    validated first and any invalid line aborts the import unchanged.
    """
    with _lines_with_progress(path) as lines:
        summary = _load_or_exit(jsonl.parse_lines(lines), source="import")
    click.echo(summary)


@images_cli.command("generate")
@click.option("--count", type=click.IntRange(min=0), required=True, help="How many images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same catalogue.")
@click.option(
    "--projects",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many owner projects (project-0000, project-0001, ...).",
)
@click.option(
    "--until",
    default=DEFAULT_UNTIL,
    show_default=True,
    help="Newest timestamp (ISO 8601); images span the two years before it.",
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


@images_cli.command("check-plans")
@click.option(
    "--client-ms",
    type=float,
    default=plans.CLIENT_MS,
    show_default=True,
    help="Limit for what clients send: the default order, or a filter sorted by its own key.",
)
@click.option(
    "--other-ms", type=float, default=plans.OTHER_MS, show_default=True, help="Limit for the rest."
)
@click.option("--max-ms", type=float, help="One limit for every shape (overrides both).")
@click.option(
    "--show", type=int, default=10, show_default=True, help="How many of the slowest to list."
)
def check_plans(client_ms, other_ms, max_ms, show):
    """EXPLAIN ANALYZE every listing query shape; exit 1 if any plan would not scale.

    A plan fails if it scans the whole images table, sorts half of it or more
    (judged from 10,000 images on), or runs longer than its limit. Run it on a
    large catalogue.
    """
    if max_ms is not None:
        client_ms = other_ms = max_ms
    reports = plans.check_plans(db.session, client_ms=client_ms, other_ms=other_ms)
    timings = sorted(report.execution_ms for report in reports)
    click.echo(f"Slowest of {len(reports)} query shapes (execution ms):")
    for report in sorted(reports, key=lambda report: -report.execution_ms)[:show]:
        kind = "client" if report.client_facing else "other"
        click.echo(f"  {report.execution_ms:8.2f}  {kind:6}  {report.description}")
    failed = [report for report in reports if report.problems]
    for report in failed:
        click.echo(f"FAIL {report.description}: {'; '.join(report.problems)}")
    client = [report.execution_ms for report in reports if report.client_facing]
    click.echo(
        f"{len(reports)} plans, {len(failed)} failed; execution ms median "
        f"{timings[len(timings) // 2]:.2f}, max {timings[-1]:.2f}; the {len(client)} "
        f"client-facing shapes max {max(client):.2f} (limits {client_ms} / {other_ms} ms)"
    )
    sys.exit(1 if failed else 0)


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
