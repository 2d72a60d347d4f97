"""GET /metrics: Prometheus metrics for scrapers (the shipped nginx site allows only its list).

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR (app/serving/gunicorn_conf.py does) so
that the request metrics add up every worker's samples; without it, one
process's own. The catalogue's freshness is read from the database at each scrape.
"""

import os
import time

from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from app import db as database
from app.freshness import catalogue_freshness, mirror_failing
from app.web.observability import log_fields

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics, summed over gunicorn workers in multiprocess mode.

    The catalogue's freshness is read from the database at each scrape.
    """
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    catalogue = CollectorRegistry()
    catalogue.register(CatalogueCollector())
    return Response(
        generate_latest(registry) + generate_latest(catalogue), content_type=CONTENT_TYPE_LATEST
    )


class CatalogueCollector:
    """How fresh the catalogue is: its newest change, each source's latest load, the mirrors."""

    def collect(self):
        try:
            freshness = database.read(catalogue_freshness)
        except database.DatabaseUnavailable as error:
            # The scrape still answers; the missing series and /readyz tell why.
            current_app.logger.warning("no catalogue metrics: %s", error, extra=log_fields())
            return
        newest = GaugeMetricFamily(
            "image_catalogue_newest_update_timestamp_seconds",
            "Newest updated_at of any image, as a Unix time.",
        )
        if freshness.newest_update is not None:
            newest.add_metric([], freshness.newest_update.timestamp())
        yield newest
        loads = GaugeMetricFamily(
            "image_catalogue_last_load_timestamp_seconds",
            "When the latest load from each source (import, generate, glance) committed.",
            labels=["source"],
        )
        for source, finished_at in freshness.last_loads.items():
            loads.add_metric([source], finished_at.timestamp())
        yield loads
        yield from _mirror_metrics(freshness.mirrors)


MIRROR_GAUGES = {
    "last_success_timestamp_seconds": "When the last successful pass began reading Glance.",
    "lag_seconds": "Seconds since then: Glance changes older than this are mirrored.",
    "watermark_timestamp_seconds": "The newest Glance change time mirrored (Glance's clock).",
    "last_pass_seconds": "How long the last successful pass took.",
    "last_error_timestamp_seconds": "When a pass last failed.",
    "failing": "1 when the latest pass failed or its reconcile was refused, else 0.",
    "refused_deletions": "Deletions the last reconcile refused to apply (mass-deletion guard).",
}


def _mirror_metrics(mirrors):
    gauges = {
        name: GaugeMetricFamily(f"image_catalogue_mirror_{name}", text, labels=["source"])
        for name, text in MIRROR_GAUGES.items()
    }
    now = time.time()
    for state in mirrors:
        success = _unix(state["last_success_at"])
        values = {
            "last_success_timestamp_seconds": success,
            "lag_seconds": None if success is None else now - success,
            "watermark_timestamp_seconds": _unix(state["watermark"]),
            "last_pass_seconds": state["last_pass_seconds"],
            "last_error_timestamp_seconds": _unix(state["last_error_at"]),
            "failing": float(mirror_failing(state)),
            "refused_deletions": state["refused_deletions"],
        }
        for name, value in values.items():
            if value is not None:
                gauges[name].add_metric([state["source"]], value)
    yield from gauges.values()


def _unix(moment):
    return None if moment is None else moment.timestamp()
