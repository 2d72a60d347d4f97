"""Every listing query shape can be answered from an index (small catalogue, planner nudged)."""

import pytest
import sqlalchemy as sa

from app.cli import check_plans
from app.db import db
from app.db.reads import Reader
from app.loading import upsert
from helpers import load_synthetic


@pytest.fixture
def synthetic_catalogue(app):
    load_synthetic(app, 3000, seed=3, projects=20)


def _check(drop_index=None):
    # On a few thousand rows PostgreSQL rightly prefers reading the table or
    # sorting it; switched off, it must find an index-ordered plan if one exists.
    db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    db.session.execute(sa.text("SET LOCAL enable_sort = off"))
    if drop_index:
        db.session.execute(sa.text(f"DROP INDEX {drop_index}"))
    reader = Reader(upsert.cursor_of(db.session), prefix="")
    # Timing is the benchmark's business (bench/), not a unit test's.
    return check_plans.check_plans(
        min_rows=0, client_ms=float("inf"), other_ms=float("inf"), read=lambda work: work(reader)
    )


def test_every_query_shape_has_an_index_backed_plan(app, synthetic_catalogue):
    with app.app_context():
        reports = _check()
    assert len(reports) > 1000
    assert [(report.description, report.problems) for report in reports if report.problems] == []


def test_plan_check_flags_a_sort_without_its_index(app, synthetic_catalogue):
    with app.app_context():
        reports = _check(drop_index="ix_images_name_sort")
    failed = {report.description for report in reports if report.problems}
    assert "member, no filter, name asc" in failed
    # Only shapes that sort by name or filter on it need that index.
    assert all(", name" in description for description in failed)
