"""`images check-plans`: EXPLAIN ANALYZE every listing query shape; flag plans that cannot scale.

A plan fails when it reads the whole images table (a Seq Scan on images),
sorts most of it (a Sort fed half the table's rows or more, but for the
sort of a filter's few matches), or runs (median of RUNS) longer
than its class allows: CLIENT_MS for what clients send (the default order,
created_at desc, with any filter, and a filter sorted by its own key), and
OTHER_MS for every other shape (a filter whose matches sit at the far end of
another key's order). Scans and sorts are judged only on a catalogue of at
least `min_rows` images: on a small table they are the right plan. The
statements run through the read path, where listings run.
"""

import dataclasses
import datetime as dt
import itertools
import statistics
import sys
import uuid
from dataclasses import dataclass, field

import click

from app import db as database
from app.cli.group import defaulted_option, images_cli
from app.images import repository
from app.images.query import SORT_KEYS, Filters, ListingQuery, Page, Sort
from app.tokens import Caller

PAGE = 25
ID = repository.LISTING_COLUMNS.index("id")
MIN_ROWS = 10_000
# What clients send by default must stay fast; shapes no v1 client sends by
# default may take longer (no composite index per filter and sort key: their
# cost stays bounded by the statement timeout). Limits at 1,000,000 images.
CLIENT_MS, OTHER_MS = 3.0, 120.0
# Each shape's time is the median of this many runs: a page read from disk
# the first time, or a busy neighbour, is not the plan's cost.
RUNS = 3
DEFAULT_ORDER = Sort()


@dataclass
class PlanReport:
    description: str
    client_facing: bool
    execution_ms: float = 0.0
    problems: list = field(default_factory=list)


def check_plans(*, client_ms=CLIENT_MS, other_ms=OTHER_MS, min_rows=MIN_ROWS, read=None):
    """Return a PlanReport for every caller x filter x sort x marker combination.

    `read(work)` runs `work(reader)` where the plans are judged: by default
    the read path (database.read), where listings run.
    """
    read = read or database.read
    samples = read(_samples)
    table_rows = read(lambda reader: reader.first("SELECT count(*) FROM images")[0])
    combinations = itertools.product(_callers(samples), _filters(samples), _sorts(), (False, True))
    reports = []
    for (who, caller, is_public), (what, own_key, filters), sort, with_marker in combinations:
        query = ListingQuery(page=Page(PAGE), filters=filters, sort=sort, is_public=is_public)
        if with_marker:
            query = _after_first_page(read, caller, query)
            if query is None:
                continue
        direction = "desc" if sort.descending else "asc"
        report = PlanReport(
            f"{who}, {what}, {sort.key} {direction}" + (", after a marker" if with_marker else ""),
            client_facing=sort == DEFAULT_ORDER or sort.key == own_key,
        )
        runs = [read(_explained(caller, query)) for _ in range(RUNS)]
        report.execution_ms = statistics.median(
            sum(plan["Execution Time"] for plan, _ in explained) for explained in runs
        )
        if table_rows >= min_rows:
            for plan, sorts_matches in runs[0]:
                report.problems += _problems(plan["Plan"], table_rows, sorts_matches)
        limit = client_ms if report.client_facing else other_ms
        if report.execution_ms > limit:
            report.problems.append(f"took {report.execution_ms:.2f} ms (limit {limit} ms)")
        reports.append(report)
    return reports


def _after_first_page(read, caller, query):
    """`query` with the last image of its first page as the marker (None if it lists none)."""
    page = read(lambda reader: repository.list_images(reader, caller, query))
    if not page:
        return None
    return dataclasses.replace(query, page=Page(PAGE, marker=uuid.UUID(str(page[-1][ID]))))


def _samples(reader):
    name = reader.first(
        "SELECT name FROM images WHERE name IS NOT NULL"
        " GROUP BY name ORDER BY count(*) DESC, name LIMIT 1"
    )
    prop = reader.first(
        "SELECT name, value FROM image_properties"
        " GROUP BY name, value ORDER BY count(*) DESC, name LIMIT 1"
    )
    project = reader.first(
        "SELECT member FROM image_members GROUP BY member ORDER BY count(*) DESC, member LIMIT 1"
    )
    (newest,) = reader.first("SELECT max(updated_at) FROM images")
    return {
        "name": name[0] if name else "none",
        "property": tuple(prop) if prop else ("none", "none"),
        "project": project[0] if project else "none",
        "week_before_newest": (newest or dt.datetime.now(dt.UTC)) - dt.timedelta(days=7),
    }


def _callers(samples):
    member = Caller(samples["project"], frozenset({"member"}))
    admin = Caller(samples["project"], frozenset({"admin"}), is_admin=True)
    return [
        ("member", member, True),
        ("no project", Caller(None, frozenset({"member"})), True),
        ("admin is_public=none", admin, None),
        ("admin is_public=false", admin, False),
    ]


def _filters(samples):
    """(description, the sort key the filter is its own, Filters) of each filter."""
    pair = samples["property"]
    return [
        ("no filter", None, Filters()),
        ("name", "name", Filters(name=(samples["name"],))),
        ("status=active", "status", Filters(status=("active",))),
        ("disk_format=qcow2", "disk_format", Filters(disk_format=("qcow2",))),
        (
            "container_format in bare,ovf",
            "container_format",
            Filters(container_format=("bare", "ovf")),
        ),
        ("size 1-2 GiB", "size", Filters(size_min=1 << 30, size_max=2 << 30)),
        (
            "changes-since a week",
            "updated_at",
            Filters(changes_since=samples["week_before_newest"]),
        ),
        ("protected", None, Filters(protected=True)),
        ("min_ram=1024", None, Filters(min_ram=1024)),
        (f"property-{pair[0]}", None, Filters(properties=(pair,))),
    ]


def _sorts():
    return [Sort(key, descending) for key in SORT_KEYS for descending in (False, True)]


def _explained(caller, query):
    """A read: (plan, whether it sorts a filter's matches by design) of each statement."""

    def explain(reader):
        plan = repository.listing_plan(reader, caller, query)
        sorts_matches = plan.shape is not None and plan.shape.matches_first
        return [
            (_plan_of(reader, *statement), sorts_matches)
            for statement in (plan.marker_check, plan.page)
            if statement is not None
        ]

    return explain


def _plan_of(reader, sql, parameters):
    return reader.first("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters)[0][0]


def _problems(node, table_rows, sorts_matches):
    problems = []
    if node.get("Actual Loops") == 0:  # a branch PostgreSQL never ran
        return problems
    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "images":
        problems.append("reads the whole images table (Seq Scan)")
    if node["Node Type"] in ("Sort", "Incremental Sort"):
        sorted_rows = sum(
            child["Actual Rows"] * child["Actual Loops"] for child in node.get("Plans", [])
        )
        # A filter's matches are sorted by design when they are few enough
        # (repository.MATCHES_FIRST_MAX).
        if sorted_rows >= table_rows / 2 and not sorts_matches:
            problems.append(f"sorts {sorted_rows:.0f} of {table_rows:.0f} rows")
    for child in node.get("Plans", []):
        problems += _problems(child, table_rows, sorts_matches)
    return problems


@images_cli.command("check-plans")
@defaulted_option(
    "--client-ms",
    float,
    CLIENT_MS,
    "Limit for what clients send: the default order, or a filter sorted by its own key.",
)
@defaulted_option("--other-ms", float, OTHER_MS, "Limit for the rest.")
@click.option("--max-ms", type=float, help="One limit for every shape (overrides both).")
@defaulted_option("--show", int, 10, "How many of the slowest to list.")
def check_plans_command(client_ms, other_ms, max_ms, show):
    """EXPLAIN ANALYZE every listing query shape; exit 1 if any plan would not scale.

    A plan fails if it scans the whole images table, sorts half of it or more
    (judged from 10,000 images on), or runs longer than its limit. Run it on a
    large catalogue.
    """
    if max_ms is not None:
        client_ms = other_ms = max_ms
    reports = check_plans(client_ms=client_ms, other_ms=other_ms)
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
