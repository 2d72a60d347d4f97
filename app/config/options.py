"""Every setting of the service, declared once: its option, its section, its variable.

The configuration file (app/config/__init__.py) sets them by section and
name, an environment variable of the same meaning overrides the file, and
the app reads them under that variable's name (Flask's config keys), but for
the few Flask and its extensions know by another name.
"""

from typing import NamedTuple

from keystonemiddleware.auth_token import list_opts as keystone_options
from oslo_config import cfg

KEYSTONE = "keystone_authtoken"
# [database] connection's value for the local trial database: not a URL.
EMBEDDED = "embedded"


class Setting(NamedTuple):
    section: str
    option: cfg.Opt
    variable: str
    # The app's name for it, when not the variable's.
    key: str | None = None

    @property
    def flask_key(self):
        return self.key or self.variable


SETTINGS = [
    # [DEFAULT]: serving, identity, hosts.
    Setting(
        "DEFAULT",
        cfg.HostAddressOpt(
            "bind_host", default="127.0.0.1", help="Address gunicorn listens on (serve)."
        ),
        "HOST",
    ),
    Setting(
        "DEFAULT",
        cfg.IntOpt(
            "bind_port", default=8080, min=0, max=65535, help="Port gunicorn listens on (serve)."
        ),
        "PORT",
    ),
    Setting(
        "DEFAULT",
        cfg.IntOpt(
            "workers",
            min=1,
            sample_default="2 x CPUs + 1",
            help="Sync gunicorn workers, one request at a time each (serve).",
        ),
        "WEB_CONCURRENCY",
    ),
    Setting(
        "DEFAULT",
        cfg.StrOpt(
            "auth_strategy",
            default="token",
            choices=[
                ("token", "tokens of the api_tokens table (image-catalogue tokens issue)"),
                ("keystone", "keystonemiddleware's auth_token, configured by [keystone_authtoken]"),
            ],
            help="How callers' tokens are checked.",
        ),
        "AUTH_STRATEGY",
    ),
    Setting(
        "DEFAULT",
        cfg.ListOpt(
            "allowed_roles",
            default=["admin", "member", "reader", "_member_"],
            help="A valid token with none of these roles gets 403.",
        ),
        "ALLOWED_ROLES",
    ),
    Setting(
        "DEFAULT",
        cfg.IntOpt(
            "token_cache_seconds",
            default=10,
            min=0,
            help="How long a worker trusts a token it has seen: the delay before a revocation "
            "takes effect (expiry is always exact). 0 turns the cache off.",
        ),
        "TOKEN_CACHE_SECONDS",
    ),
    Setting(
        "DEFAULT",
        cfg.IntOpt(
            "trusted_proxies",
            default=0,
            min=0,
            help="Proxies in front whose X-Forwarded-For/-Proto/-Host are believed (1 behind "
            "the shipped nginx site).",
        ),
        "TRUSTED_PROXIES",
    ),
    Setting(
        "DEFAULT",
        cfg.ListOpt(
            "allowed_hosts",
            default=[],
            help="Host names the service answers to; any other Host is a 400 (health checks "
            "at /healthcheck excepted). Empty: any.",
        ),
        "ALLOWED_HOSTS",
        "TRUSTED_HOSTS",
    ),
    Setting(
        "DEFAULT",
        cfg.URIOpt(
            "public_base_url",
            help="The base URL clients use (https://images.example.com): the versions "
            "document's links are built on it instead of the request's Host.",
        ),
        "PUBLIC_BASE_URL",
    ),
    Setting(
        "DEFAULT",
        cfg.URIOpt(
            "image_service_url",
            help="The cloud's Image service (Glance), e.g. https://glance.example.com:9292: where "
            "v1 writes and downloads go (unset: the caller's catalog), where GET "
            "/v1/images/{id} redirects with local tokens, and what writes are told when off.",
        ),
        "IMAGE_SERVICE_URL",
    ),
    Setting(
        "DEFAULT",
        cfg.BoolOpt(
            "list_hidden_images",
            default=False,
            help="List hidden images (Glance's os_hidden) without changes-since too.",
        ),
        "LIST_HIDDEN_IMAGES",
    ),
    Setting(
        "DEFAULT",
        cfg.IntOpt(
            "answer_cache_bytes",
            default=32 * 1024 * 1024,
            min=0,
            help="Recent listing, member-list and change-feed answers each worker keeps, in "
            "bytes: a repeat at the same change number is answered without its query. 0 keeps "
            "none.",
        ),
        "ANSWER_CACHE_BYTES",
    ),
    # [database]: the catalogue's PostgreSQL.
    Setting(
        "database",
        cfg.StrOpt(
            "connection",
            secret=True,
            help="The primary: postgresql://user:password@host:5432/dbname, or 'embedded' for a "
            "local trial database (make run, tests). Unset: nothing starts.",
        ),
        "DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
    ),
    Setting(
        "database",
        cfg.StrOpt(
            "embedded_pgdata",
            default="/var/tmp/image-catalogue/pgdata",
            help="Data directory of the embedded PostgreSQL (connection = embedded).",
        ),
        "EMBEDDED_PGDATA",
    ),
    Setting(
        "database",
        cfg.IntOpt(
            "pool_size",
            default=1,
            min=1,
            help="Connections kept per worker and per database (a sync worker serves one "
            "request at a time).",
        ),
        "DB_POOL_SIZE",
    ),
    Setting(
        "database",
        cfg.IntOpt(
            "max_overflow",
            default=4,
            min=0,
            help="How many more connections a worker may open briefly.",
        ),
        "DB_MAX_OVERFLOW",
    ),
    Setting(
        "database",
        cfg.IntOpt("connect_timeout", default=2, min=1, help="Seconds to wait for a connection."),
        "DB_CONNECT_TIMEOUT",
    ),
    Setting(
        "database",
        cfg.IntOpt(
            "statement_timeout_ms",
            default=5000,
            min=1,
            help="Limit for each statement of the read path; past it the request is a 503.",
        ),
        "DB_STATEMENT_TIMEOUT_MS",
    ),
    Setting(
        "database",
        cfg.IntOpt(
            "migration_lock_timeout_ms",
            default=3000,
            min=1,
            help="How long db upgrade's DDL waits for a table lock before it gives up.",
        ),
        "MIGRATION_LOCK_TIMEOUT_MS",
    ),
    # [replicas]: streaming replicas for reads.
    Setting(
        "replicas",
        cfg.ListOpt(
            "connections",
            default=[],
            secret=True,
            help="Streaming replicas of the primary for reads, named replica-1, replica-2, ... "
            "in this order.",
        ),
        "DATABASE_REPLICA_URLS",
    ),
    Setting(
        "replicas",
        cfg.FloatOpt(
            "max_lag_seconds",
            default=5.0,
            min=0,
            help="A replica further behind refuses the read, which moves elsewhere.",
        ),
        "REPLICA_MAX_LAG_SECONDS",
    ),
    Setting(
        "replicas",
        cfg.FloatOpt(
            "retry_seconds",
            default=5.0,
            min=0,
            help="How long a worker leaves out a replica that failed, was down or lagged.",
        ),
        "REPLICA_RETRY_SECONDS",
    ),
    # [glance_mirror]: images sync-glance.
    Setting(
        "glance_mirror",
        cfg.StrOpt(
            "connection",
            secret=True,
            help="The Glance database to mirror (mysql+pymysql://... or postgresql://...), "
            "when images sync-glance names none.",
        ),
        "GLANCE_DATABASE_URL",
    ),
    Setting(
        "glance_mirror",
        cfg.FloatOpt(
            "connect_timeout",
            default=10.0,
            min=1,
            help="Seconds the mirror waits to connect to Glance's database.",
        ),
        "GLANCE_CONNECT_TIMEOUT",
    ),
    Setting(
        "glance_mirror",
        cfg.FloatOpt(
            "read_timeout",
            default=60.0,
            min=1,
            help="Seconds the mirror waits for each statement on Glance's database.",
        ),
        "GLANCE_READ_TIMEOUT",
    ),
    Setting(
        "glance_mirror",
        cfg.FloatOpt(
            "max_deletion_share",
            default=0.1,
            min=0,
            max=1,
            help="A reconcile may mark at most max(deletion_floor, this share of the source's "
            "live images) deleted unasked (--allow-deletions allows more).",
        ),
        "MIRROR_MAX_DELETION_SHARE",
    ),
    Setting(
        "glance_mirror",
        cfg.IntOpt(
            "deletion_floor",
            default=10,
            min=0,
            help="The deletions a reconcile may always make, however small the source.",
        ),
        "MIRROR_DELETION_FLOOR",
    ),
    Setting(
        "glance_mirror",
        cfg.FloatOpt(
            "give_up_seconds",
            default=900.0,
            min=1,
            help="A follower with no successful pass for this long exits, for its service "
            "manager to restart it.",
        ),
        "MIRROR_GIVE_UP_SECONDS",
    ),
    Setting(
        "glance_mirror",
        cfg.StrOpt(
            "source",
            default="glance",
            help="The mirror's source name (images sync-glance --source): the images v1 writes "
            "through Glance make are this source's, applied from [glance_mirror] connection.",
        ),
        "MIRROR_SOURCE",
    ),
    # [change_feed]: GET /v1/images/changes.
    Setting(
        "change_feed",
        cfg.IntOpt(
            "retention_seconds",
            default=7 * 24 * 3600,
            min=0,
            help="How long tombstones (an image a caller no longer sees) are kept: "
            "images prune-changes removes older ones, and a cursor from before them is a 410.",
        ),
        "CHANGE_RETENTION_SECONDS",
    ),
    Setting(
        "change_feed",
        cfg.IntOpt(
            "changes_since_margin_seconds",
            default=900,
            min=120,
            help="How far before its previous answer a changes-since poller asks (the "
            "X-Image-Catalogue-Changes-Since-Margin header): at least the Glance mirror's "
            "overlap plus its interval. An image that arrives later than this (less a minute) "
            "after its updated_at makes such pollers list again instead.",
        ),
        "CHANGES_SINCE_MARGIN_SECONDS",
    ),
    # [glance_api]: v1 writes carried out through the cloud's Glance v2.
    Setting(
        "glance_api",
        cfg.StrOpt(
            "region_name",
            help="The region of the catalog's Glance (the image endpoint writes go to) when "
            "[DEFAULT] image_service_url is not set. Unset: any region's.",
        ),
        "GLANCE_API_REGION_NAME",
    ),
    Setting(
        "glance_api",
        cfg.StrOpt(
            "interface",
            default="internal",
            choices=["public", "internal", "admin"],
            help="Which of the catalog's Glance endpoints writes go to.",
        ),
        "GLANCE_API_INTERFACE",
    ),
    Setting(
        "glance_api",
        cfg.FloatOpt(
            "connect_timeout",
            default=5.0,
            min=0.1,
            help="Seconds to wait for a connection to Glance; past it a write is a 503.",
        ),
        "GLANCE_API_CONNECT_TIMEOUT",
    ),
    Setting(
        "glance_api",
        cfg.FloatOpt(
            "read_timeout",
            default=60.0,
            min=0.1,
            help="Seconds to wait for each answer (or each piece of a download) from Glance; "
            "past it a write is a 503.",
        ),
        "GLANCE_API_READ_TIMEOUT",
    ),
    Setting(
        "glance_api",
        cfg.IntOpt(
            "image_size_cap",
            default=1099511627776,
            min=0,
            help="Glance's image_size_cap: an upload declared larger is a 413 before any of it "
            "is sent on.",
        ),
        "GLANCE_API_IMAGE_SIZE_CAP",
    ),
    Setting(
        "glance_api",
        cfg.BoolOpt(
            "redirect_downloads",
            default=False,
            help="GET /v1/images/{id} answers a 303 to Glance's /v2/images/{id}/file instead "
            "of streaming the data from Glance with the caller's token.",
        ),
        "GLANCE_API_REDIRECT_DOWNLOADS",
    ),
    # [limits]: what one request may ask.
    Setting(
        "limits",
        cfg.IntOpt("page_limit_default", default=25, min=1, help="Page size without limit."),
        "PAGE_LIMIT_DEFAULT",
    ),
    Setting(
        "limits",
        cfg.IntOpt(
            "page_limit_max", default=1000, min=1, help="Larger values of limit are clamped."
        ),
        "PAGE_LIMIT_MAX",
    ),
    Setting(
        "limits",
        cfg.IntOpt(
            "property_filters_max",
            default=20,
            min=1,
            help="More property-<key> filters in one request are a 400.",
        ),
        "PROPERTY_FILTERS_MAX",
    ),
    Setting(
        "limits",
        cfg.IntOpt(
            "max_query_string_bytes",
            default=4096,
            min=1,
            help="A longer query string is a 414.",
        ),
        "MAX_QUERY_STRING_BYTES",
    ),
    Setting(
        "limits",
        cfg.IntOpt("max_header_bytes", default=8192, min=1, help="Larger headers are a 431."),
        "MAX_HEADER_BYTES",
    ),
    # [logging]
    Setting(
        "logging",
        cfg.StrOpt(
            "level",
            default="INFO",
            choices=[
                ("DEBUG", "INFO and debugging detail"),
                ("INFO", "request lines (see access_log), loads, mirror passes"),
                ("WARNING", "no request lines"),
                ("ERROR", "errors only"),
            ],
            help="Level of the JSON logs.",
        ),
        "LOG_LEVEL",
    ),
    Setting(
        "logging",
        cfg.StrOpt(
            "access_log",
            default="failures",
            choices=[
                ("failures", "4xx, 5xx and requests slower than slow_request_ms"),
                ("all", "every request"),
            ],
            help="Which requests get a log line.",
        ),
        "ACCESS_LOG",
    ),
    Setting(
        "logging",
        cfg.FloatOpt(
            "slow_request_ms",
            default=1000.0,
            min=0,
            help="With access_log = failures, slower requests are logged too.",
        ),
        "SLOW_REQUEST_MS",
    ),
    # [healthcheck]: for load balancers (as oslo.middleware's healthcheck).
    Setting(
        "healthcheck",
        cfg.StrOpt(
            "disable_by_file_path",
            help="While this file exists, /healthcheck answers 503 DISABLED BY FILE: the load "
            "balancer drains this node.",
        ),
        "HEALTHCHECK_DISABLE_BY_FILE",
    ),
]
# Variables that override options other libraries declare: (section, name).
LIBRARY_VARIABLES = {"POLICY_FILE": ("oslo_policy", "policy_file")}
# KEYSTONE_AUTHTOKEN_<OPTION> overrides [keystone_authtoken] <option>.
KEYSTONE_PREFIX = "KEYSTONE_AUTHTOKEN_"


def list_opts():
    """[(section, [options])] of the service's own options.

    oslo-config-generator's and oslo-config-validator's namespace image_catalogue (setup.cfg).
    """
    sections = {}
    for setting in SETTINGS:
        sections.setdefault(setting.section, []).append(setting.option)
    return list(sections.items())


def option_groups():
    """[(section, [options])] of every option read from the file, keystonemiddleware's too."""
    return [*list_opts(), *keystone_options()]
