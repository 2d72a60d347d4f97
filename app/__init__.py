"""Image catalogue service: the Glance v1 image listing on PostgreSQL."""

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Rule

from app import (
    auth,
    commands,
    embedded_postgres,
    errors,
    health,
    limits,
    observability,
    openapi,
    request_id,
    versions,
)
from app.config import Config
from app.extensions import db, migrate
from app.images import bp as images_bp
from app.json_provider import GlanceJSONProvider

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


class GetOnlyRule(Rule):
    """A URL rule that answers only the methods it names.

    werkzeug adds HEAD to every GET rule; the contract answers HEAD with 405.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.methods is not None:
            self.methods.discard("HEAD")


class ImageCatalogue(Flask):
    url_rule_class = GetOnlyRule
    json_provider_class = GlanceJSONProvider


def create_app(config_class=Config):
    app = ImageCatalogue(__name__, static_folder=None)
    app.config.from_object(config_class)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    _configure_database(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)

    request_id.init_app(app)
    observability.init_app(app)
    limits.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(versions.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(images_bp, url_prefix="/v1.1/images")
    app.register_blueprint(images_bp, url_prefix="/v1/images", name="images_v1")
    commands.init_app(app)

    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app


def _configure_database(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url:
        url = embedded_postgres.start(app.config["EMBEDDED_PGDATA"]).get_uri()
    app.config["SQLALCHEMY_DATABASE_URI"] = psycopg2_url(url)
    statement_timeout = app.config["DB_STATEMENT_TIMEOUT_MS"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": app.config["DB_POOL_SIZE"],
        "max_overflow": app.config["DB_MAX_OVERFLOW"],
        "pool_pre_ping": True,
        "connect_args": {
            "connect_timeout": app.config["DB_CONNECT_TIMEOUT"],
            "options": f"-c timezone=UTC -c statement_timeout={statement_timeout}",
        },
    }


def psycopg2_url(url):
    """Name the psycopg2 driver explicitly: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3."""
    scheme, separator, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2{separator}{rest}"
    return url
