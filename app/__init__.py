"""Image catalogue service: the Glance v1 image listing on PostgreSQL."""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Rule

from app import auth, cli, policy
from app import db as database
from app.config import ConfigurationError, config_file, load, settings, writes_enabled
from app.config.checks import startup_problem
from app.images import bp as images_bp
from app.images import writes
from app.images.members import shared_bp
from app.web import (
    answers,
    errors,
    health,
    healthcheck,
    hosts,
    limits,
    metrics,
    observability,
    openapi,
    request_id,
    versions,
)
from app.web.json_provider import GlanceJSONProvider


class GetOnlyRule(Rule):
    """A URL rule that answers only the methods it names.

    werkzeug adds HEAD to every GET rule; the contract answers HEAD with 405
    but where a rule of its own serves it (HEAD /v1/images/{id}).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.methods is not None and "GET" in self.methods:
            self.methods.discard("HEAD")


class ImageCatalogue(Flask):
    url_rule_class = GetOnlyRule
    json_provider_class = GlanceJSONProvider


def create_app(conf=None):
    """Build the service from `conf`: by default the configuration file and the environment.

    :raises ConfigurationError: a setting is missing or wrong (the message says which).
    """
    conf = load(config_file()) if conf is None else conf
    problem = startup_problem(conf)
    if problem:
        raise ConfigurationError(problem)
    app = ImageCatalogue(__name__, static_folder=None)
    app.config.update(settings(conf), PROVIDE_AUTOMATIC_OPTIONS=False)
    app.extensions["conf"] = conf
    app.extensions["policy"] = policy.enforcer(conf)
    database.init_app(app)

    request_id.init_app(app)
    observability.init_app(app)
    limits.init_app(app)
    hosts.init_app(app)
    # Answers given again sit in front of Flask, behind Keystone's middleware.
    answers.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    health.init_app(app)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(versions.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(images_bp, url_prefix="/v1.1/images")
    app.register_blueprint(images_bp, url_prefix="/v1/images", name="images_v1")
    app.config["WRITES"] = writes_enabled(app.config)
    if app.config["WRITES"]:
        app.register_blueprint(writes.bp, url_prefix="/v1.1/images")
        app.register_blueprint(writes.bp, url_prefix="/v1/images", name="image_writes_v1")
    app.register_blueprint(shared_bp, url_prefix="/v1.1/shared-images")
    app.register_blueprint(shared_bp, url_prefix="/v1/shared-images", name="shared_images_v1")
    cli.init_app(app)

    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.wsgi_app = healthcheck.wrap(app.wsgi_app, app.config["HEALTHCHECK_DISABLE_BY_FILE"])
    return app
