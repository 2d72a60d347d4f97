"""Service configuration, read once from the environment (see README.md)."""

import os


def _int(name, default):
    return int(os.environ.get(name) or default)


def _list(name, default):
    raw = os.environ.get(name) or default
    return [item.strip() for item in raw.split(",") if item.strip()]


class Config:
    # Empty means "start the embedded PostgreSQL" (app/embedded_postgres.py).
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or None
    EMBEDDED_PGDATA = os.environ.get("EMBEDDED_PGDATA") or "/var/tmp/image-catalogue/pgdata"

    # A sync gunicorn worker serves one request at a time: one pooled
    # connection each, plus overflow for anything else the process runs.
    DB_POOL_SIZE = _int("DB_POOL_SIZE", 1)
    DB_MAX_OVERFLOW = _int("DB_MAX_OVERFLOW", 4)
    DB_CONNECT_TIMEOUT = _int("DB_CONNECT_TIMEOUT", 2)
    DB_STATEMENT_TIMEOUT_MS = _int("DB_STATEMENT_TIMEOUT_MS", 5000)

    PAGE_LIMIT_DEFAULT = _int("PAGE_LIMIT_DEFAULT", 25)
    PAGE_LIMIT_MAX = _int("PAGE_LIMIT_MAX", 1000)

    AUTH_STRATEGY = os.environ.get("AUTH_STRATEGY") or "token"
    # AUTH_STRATEGY=keystone: options of keystonemiddleware's auth_token, one
    # per KEYSTONE_AUTHTOKEN_<OPTION> variable (e.g. ..._WWW_AUTHENTICATE_URI).
    KEYSTONE_AUTHTOKEN = {
        name.removeprefix("KEYSTONE_AUTHTOKEN_").lower(): value
        for name, value in os.environ.items()
        if name.startswith("KEYSTONE_AUTHTOKEN_")
    }
    # How long a worker trusts a token it has seen: the delay before a
    # revocation takes effect (expiry is always exact).
    TOKEN_CACHE_SECONDS = _int("TOKEN_CACHE_SECONDS", 10)
    ALLOWED_ROLES = _list("ALLOWED_ROLES", "admin,member,reader,_member_")
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    MAX_QUERY_STRING_BYTES = _int("MAX_QUERY_STRING_BYTES", 4096)
    MAX_HEADER_BYTES = _int("MAX_HEADER_BYTES", 8192)
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"
