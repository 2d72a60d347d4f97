"""JSON logs carrying the request id, and the request metrics (served by app/web/metrics.py)."""

import datetime as dt
import functools
import json
import logging
import re
import time
from urllib.parse import unquote_plus

from flask import current_app, g, request
from prometheus_client import (
    Counter,
    Histogram,
)

from app.web import request_id

CREDENTIAL_WORDS = frozenset(
    {"token", "password", "passwd", "secret", "credential", "credentials", "auth", "apikey"}
)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "image_catalogue_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "image_catalogue_request_duration_seconds",
    "Time from request to response, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DB_ERRORS = Counter("image_catalogue_db_errors_total", "Requests failed by the database.", ["kind"])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record):
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def init_app(app):
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    app.logger.handlers = [handler]
    app.logger.setLevel(app.config["LOG_LEVEL"])
    app.logger.propagate = False
    app.before_request(_start_timer)
    app.after_request(_record)


def log_fields(**fields):
    """Extra JSON fields for one log call, with this request's id."""
    return {"fields": {"request_id": request_id.current(), **fields}}


def _start_timer():
    g.started = time.perf_counter()


def _record(response):
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule else "unmatched"
    record(
        current_app,
        request.environ,
        route,
        response.status_code,
        elapsed,
        request_id.current(),
    )
    return response


def record(app, environ, route, status, elapsed, request_id_):
    """Count a request answered, and log its line if ACCESS_LOG wants it."""
    # Every label comes from a closed set, so no request can add a time series.
    method = environ["REQUEST_METHOD"]
    method = method if method in KNOWN_METHODS else "other"
    requests, latency = _series(route, method, status)
    requests.inc()
    latency.observe(elapsed)
    if _logged(app.config, status, elapsed) and app.logger.isEnabledFor(logging.INFO):
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        app.logger.info(
            "request",
            extra={
                "fields": {
                    "request_id": request_id_,
                    "method": environ["REQUEST_METHOD"],
                    "path": _path(environ),
                    "query": masked_query(query)[:1000] if query else "",
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "remote_addr": environ.get("REMOTE_ADDR"),
                }
            },
        )


def _path(environ):
    # As werkzeug's request.path: PATH_INFO's bytes read as UTF-8, with a leading slash.
    raw = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    return "/" + raw.lstrip("/")


def _logged(config, status, elapsed):
    """Whether ACCESS_LOG wants this request's line: every one, or failures and slow ones."""
    if config["ACCESS_LOG"] == "all":
        return True
    return status >= 400 or elapsed * 1000 >= config["SLOW_REQUEST_MS"]


@functools.cache
def _series(route, method, status):
    """The request counter and latency histogram children of these labels, made once."""
    return REQUESTS.labels(route, method, status), LATENCY.labels(route)


def masked_query(query_string):
    """The query string with the values of credential-like parameters replaced by ***.

    Tokens belong in a header; one sent as a parameter is ignored by the
    service and must not end up in the logs either.
    """
    parts = []
    for part in query_string.decode("latin-1").split("&"):
        name, equals, _ = part.partition("=")
        words = set(re.split(r"[^a-z0-9]+", unquote_plus(name).lower()))
        parts.append(f"{name}=***" if equals and words & CREDENTIAL_WORDS else part)
    return "&".join(parts)
