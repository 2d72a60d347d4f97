"""EXPLAIN ANALYZE every shape of listing query and flag plans that would not scale.

A plan fails when it reads the whole images table (a Seq Scan on images),
sorts most of it (a Sort fed half the table's rows or more, but for the
sort of a filter's few matches), or runs (median of RUNS) longer
than its class allows: CLIENT_MS for what clients send (the default order,
created_at desc, with any filter, and a filter sorted by its own key), and
OTHER_MS for every other shape (a filter whose matches sit at the far end of
another key's order). Scans and sorts are judged only on a catalogue of at
least `min_rows` images: on a small table they are the right plan.
"""

import datetime as dt
import itertools
import statistics
from dataclasses import dataclass, field

import sqlalchemy as sa

from app.db.reads import Reader
from app.images import repository
from app.images.schemas import SORT_DIRS, SORT_KEYS
from app.tokens import Caller

PAGE = 25
ID = repository.LISTING_COLUMNS.index("id")
MIN_ROWS = 10_000
CLIENT_MS, OTHER_MS = 2.0, 20.0
# Each shape's time is the median of this many runs: a page read from disk
# the first time, or a busy neighbour, is not the plan's cost.
RUNS = 3
DEFAULT_ORDER = ("created_at", "desc")


@dataclass
class PlanReport:
    description: str
    client_facing: bool
    execution_ms: float = 0.0
    problems: list = field(default_factory=list)


def check_plans(session, *, client_ms=CLIENT_MS, other_ms=OTHER_MS, min_rows=MIN_ROWS):
    """Return a PlanReport for every caller x filter x sort x marker combination."""
    samples = _samples(session)
    reader = Reader(session.connection().connection.cursor(), prefix="")
    table_rows = session.scalar(sa.text("SELECT count(*) FROM images"))
    judge_scans = table_rows >= min_rows
    reports = []
    combinations = itertools.product(
        _callers(samples), _filters(samples), SORT_KEYS, SORT_DIRS, (False, True)
    )
    for (who, caller, is_public), (
        what,
        own_key,
        filters,
    ), sort_key, sort_dir, with_marker in combinations:
        query = {
            "sort_key": sort_key,
            "sort_dir": sort_dir,
            "limit": PAGE,
            "is_public": is_public,
            "properties": {},
            "matches_nothing": False,
            **filters,
        }
        if with_marker:
            page = repository.list_images(reader, caller, query)
            if not page:
                continue
            query["marker"] = page[-1][ID]
        report = PlanReport(
            f"{who}, {what}, {sort_key} {sort_dir}" + (", after a marker" if with_marker else ""),
            client_facing=(sort_key, sort_dir) == DEFAULT_ORDER or sort_key == own_key,
        )
        runs = [list(_explained(reader, caller, query)) for _ in range(RUNS)]
        report.execution_ms = statistics.median(
            sum(plan["Execution Time"] for plan, _ in explained) for explained in runs
        )
        if judge_scans:
            for plan, sorts_matches in runs[0]:
                report.problems += _problems(plan["Plan"], table_rows, sorts_matches)
        limit = client_ms if report.client_facing else other_ms
        if report.execution_ms > limit:
            report.problems.append(f"took {report.execution_ms:.2f} ms (limit {limit} ms)")
        reports.append(report)
    session.rollback()
    return reports


def _samples(session):
    def first(sql):
        return session.execute(sa.text(sql)).first()

    name = first(
        "SELECT name FROM images WHERE name IS NOT NULL"
        " GROUP BY name ORDER BY count(*) DESC, name LIMIT 1"
    )
    prop = first(
        "SELECT name, value FROM image_properties"
        " GROUP BY name, value ORDER BY count(*) DESC, name LIMIT 1"
    )
    project = first(
        "SELECT member FROM image_members GROUP BY member ORDER BY count(*) DESC, member LIMIT 1"
    )
    newest = session.scalar(sa.text("SELECT max(updated_at) FROM images"))
    return {
        "name": name[0] if name else "none",
        "property": tuple(prop) if prop else ("none", "none"),
        "project": project[0] if project else "none",
        "week_before_newest": (newest or dt.datetime.now(dt.UTC)) - dt.timedelta(days=7),
    }


def _callers(samples):
    member = Caller(samples["project"], frozenset({"member"}))
    admin = Caller(samples["project"], frozenset({"admin"}))
    return [
        ("member", member, True),
        ("no project", Caller(None, frozenset({"member"})), True),
        ("admin is_public=none", admin, None),
        ("admin is_public=false", admin, False),
    ]


def _filters(samples):
    """(description, the sort key the filter is its own, query values) of each filter."""
    key, value = samples["property"]
    return [
        ("no filter", None, {}),
        ("name", "name", {"name": [samples["name"]]}),
        ("status=active", "status", {"status": ["active"]}),
        ("disk_format=qcow2", "disk_format", {"disk_format": ["qcow2"]}),
        ("container_format in bare,ovf", "container_format", {"container_format": ["bare", "ovf"]}),
        ("size 1-2 GiB", "size", {"size_min": 1 << 30, "size_max": 2 << 30}),
        ("changes-since a week", "updated_at", {"changes_since": samples["week_before_newest"]}),
        ("protected", None, {"protected": True}),
        ("min_ram=1024", None, {"min_ram": 1024}),
        (f"property-{key}", None, {"properties": {key: value}}),
    ]


def _explained(reader, caller, query):
    """(plan, whether it sorts a filter's matches by design) of each statement of the query."""
    for statement in repository.listing_statements(reader, caller, query):
        if statement is not None:
            sql, parameters = statement
            plan = reader.first("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters)[0][0]
            yield plan, repository.MATCHES in sql


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
