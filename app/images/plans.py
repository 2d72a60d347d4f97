"""EXPLAIN ANALYZE every shape of listing query and flag plans that would not scale.

A plan fails when it reads the whole images table (a Seq Scan on images),
sorts most of it (a Sort fed half the table's rows or more), or, when a limit
is given, runs longer than that many milliseconds. Scans and sorts are judged
only on a catalogue of at least `min_rows` images: on a small table they are
the right plan.
"""

import datetime as dt
import itertools
from dataclasses import dataclass, field

import sqlalchemy as sa

from app.db.reads import Reader
from app.images import repository
from app.images.schemas import SORT_DIRS, SORT_KEYS
from app.tokens import Caller

PAGE = 25
ID = repository.LISTING_COLUMNS.index("id")
MIN_ROWS = 10_000


@dataclass
class PlanReport:
    description: str
    execution_ms: float = 0.0
    problems: list = field(default_factory=list)


def check_plans(session, *, max_ms=None, min_rows=MIN_ROWS):
    """Return a PlanReport for every caller x filter x sort x marker combination."""
    samples = _samples(session)
    reader = Reader(session.connection().connection.cursor(), prefix="")
    table_rows = session.scalar(sa.text("SELECT count(*) FROM images"))
    judge_scans = table_rows >= min_rows
    reports = []
    combinations = itertools.product(
        _callers(samples), _filters(samples), SORT_KEYS, SORT_DIRS, (False, True)
    )
    for (who, caller, is_public), (what, filters), sort_key, sort_dir, with_marker in combinations:
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
            f"{who}, {what}, {sort_key} {sort_dir}" + (", after a marker" if with_marker else "")
        )
        for plan in _explained(reader, caller, query):
            report.execution_ms += plan["Execution Time"]
            if judge_scans:
                report.problems += _problems(plan["Plan"], table_rows)
        if max_ms is not None and report.execution_ms > max_ms:
            report.problems.append(f"took {report.execution_ms:.2f} ms (limit {max_ms} ms)")
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
    key, value = samples["property"]
    return [
        ("no filter", {}),
        ("name", {"name": [samples["name"]]}),
        ("status=active", {"status": ["active"]}),
        ("disk_format=qcow2", {"disk_format": ["qcow2"]}),
        ("container_format in bare,ovf", {"container_format": ["bare", "ovf"]}),
        ("size 1-2 GiB", {"size_min": 1 << 30, "size_max": 2 << 30}),
        ("changes-since a week", {"changes_since": samples["week_before_newest"]}),
        ("protected", {"protected": True}),
        ("min_ram=1024", {"min_ram": 1024}),
        (f"property-{key}", {"properties": {key: value}}),
    ]


def _explained(reader, caller, query):
    for statement in repository.listing_statements(caller, query):
        if statement is not None:
            sql, parameters = statement
            yield reader.first("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters)[0][0]


def _problems(node, table_rows):
    problems = []
    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "images":
        problems.append("reads the whole images table (Seq Scan)")
    if node["Node Type"] in ("Sort", "Incremental Sort"):
        sorted_rows = sum(
            child["Actual Rows"] * child["Actual Loops"] for child in node.get("Plans", [])
        )
        if sorted_rows >= table_rows / 2:
            problems.append(f"sorts {sorted_rows:.0f} of {table_rows:.0f} rows")
    for child in node.get("Plans", []):
        problems += _problems(child, table_rows)
    return problems
