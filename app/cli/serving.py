"""The commands that need no app: serve, check-config, nginx-site, haproxy-config, shipped-file."""

import importlib.resources
import math
import multiprocessing
import os
import sys

import click

from app import policy
from app.config import (
    ConfigurationError,
    config_file,
    load,
    one_line_exit,
    settings,
    writes_enabled,
)
from app.config.checks import problems
from app.config.secrets import exposure_warnings
from app.serving import GUNICORN_SETTINGS, address
from app.serving.haproxy_config import HAProxyConfig
from app.serving.nginx_site import Site

SYSTEMD_UNITS = (
    "image-catalogue@.service",
    "image-catalogue-glance-follower.service",
    "image-catalogue-prune-changes.service",
    "image-catalogue-prune-changes.timer",
)
# What `shipped-file` prints: (package, file) by name.
SHIPPED = {
    "image-catalogue.conf.sample": ("app.config", "image-catalogue.conf.sample"),
    **{unit: ("app.serving", f"systemd/{unit}") for unit in SYSTEMD_UNITS},
}


def _configuration():
    """The ConfigOpts of the configuration file and the environment; exit in one line if wrong."""
    with one_line_exit():
        return load(config_file())


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--app",
    "target",
    default="app:create_app()",
    show_default=True,
    help="The WSGI app gunicorn serves (the benchmark serves a hello app to measure the stack).",
)
@click.argument("gunicorn_options", nargs=-1, type=click.UNPROCESSED)
def serve(target, gunicorn_options):
    """Serve the API with gunicorn and the shipped settings (GUNICORN_OPTIONS after them).

    It binds to [DEFAULT] bind_host:bind_port (HOST, PORT) with [DEFAULT]
    workers (WEB_CONCURRENCY) sync workers; gunicorn replaces this process.
    """
    with one_line_exit():
        values = settings(_configuration())
    workers = values["WEB_CONCURRENCY"] or multiprocessing.cpu_count() * 2 + 1
    arguments = [
        *("-m", "gunicorn", "-c", str(GUNICORN_SETTINGS)),
        *("--bind", address(values["HOST"], values["PORT"]), "--workers", str(workers)),
        *_write_options(values),
        *gunicorn_options,
        target,
    ]
    os.execv(sys.executable, [sys.executable, *arguments])


def _write_options(values):
    """gunicorn's options for v1 writes.

    python-glanceclient's headers have underscores (x-image-meta-disk_format),
    which gunicorn drops unless told to map them; gunicorn_conf.py's
    pre_request drops every other header spelled with one, so that no client
    can pass off X-Forwarded_For as the proxy's. A worker waits on one call
    to Glance at a time, at most its connect and read timeouts, without a
    sign of life: gunicorn must not kill it before the 503 those give.
    """
    if not writes_enabled(values):
        return ()
    silent = values["GLANCE_API_CONNECT_TIMEOUT"] + values["GLANCE_API_READ_TIMEOUT"]
    return ("--header-map", "dangerous", "--timeout", str(max(30, math.ceil(silent) + 30)))


@click.command("check-config")
def check_config():
    """Check the configuration file, the environment's overrides and the policy file.

    Names each problem on a line of its own and exits 1, or says OK. A file
    holding a secret that every user may read gets a warning, which alone
    does not fail the check: the service runs, only the host is less safe.
    """
    path = config_file()
    conf = _configuration()
    for warning in exposure_warnings(conf.config_file):
        click.echo(warning, err=True)
    found = problems(conf)
    try:
        policy.enforcer(conf)
    except ConfigurationError as problem:
        found.append(str(problem))
    for problem in found:
        click.echo(problem, err=True)
    if found:
        sys.exit(1)
    click.echo(f"{path or 'no configuration file (the environment only)'}: OK")


@click.command("nginx-site")
@click.option("--server-name", required=True, help="The host name clients use.")
@click.option("--certificate", required=True, help="PEM certificate (chain) path.")
@click.option("--certificate-key", required=True, help="PEM private key path.")
@click.option(
    "--upstream", "upstreams", multiple=True, required=True, help="A gunicorn instance, HOST:PORT."
)
@click.option(
    "--metrics-allow",
    multiple=True,
    help="An address or CIDR allowed to GET /metrics (repeatable; 127.0.0.1 always).",
)
@click.option("--https-address", default="443", show_default=True)
@click.option("--http-address", default="80", show_default=True, help="For the redirect.")
@click.option("--access-log", default=Site.access_log, show_default=True)
def nginx_site(upstreams, metrics_allow, **options):
    """Print the production nginx site (HTTPS, redirect, /metrics allow-list) for the upstreams."""
    site = Site(upstreams=list(upstreams), metrics_allow=["127.0.0.1", *metrics_allow], **options)
    click.echo(site.render(), nl=False)


def _named_servers(ctx, param, values):
    """--server NAME=HOST:PORT, repeated: {NAME: HOST:PORT} in the order given."""
    servers = {}
    for value in values:
        name, equals, address = value.partition("=")
        if not (name and equals and address) or name in servers:
            raise click.BadParameter(f"{value!r} is not NAME=HOST:PORT with a name of its own")
        servers[name] = address
    return servers


@click.command("haproxy-config")
@click.option("--server-name", required=True, help="The host name clients use.")
@click.option("--bind", default=":443", show_default=True, help="Where HTTPS is served.")
@click.option(
    "--certificate", required=True, help="One PEM file: the certificate (chain), then its key."
)
@click.option(
    "--server",
    "servers",
    multiple=True,
    required=True,
    callback=_named_servers,
    help="A gunicorn instance, NAME=HOST:PORT (repeatable; /metrics/N is the Nth).",
)
@click.option(
    "--metrics-allow",
    multiple=True,
    help="An address or CIDR allowed to GET /metrics and /readyz (repeatable; 127.0.0.1 always).",
)
def haproxy_config(metrics_allow, **options):
    """Print the whole HAProxy configuration (HTTPS, /healthcheck checks, /metrics allow-list)."""
    config = HAProxyConfig(metrics_allow=["127.0.0.1", *metrics_allow], **options)
    click.echo(config.render(), nl=False)


@click.command("shipped-file")
@click.argument("name", type=click.Choice(sorted(SHIPPED)))
def shipped_file(name):
    """Print a file the package ships: the sample configuration, the systemd units."""
    package, path = SHIPPED[name]
    click.echo((importlib.resources.files(package) / path).read_text(), nl=False)


COMMANDS = [serve, check_config, nginx_site, haproxy_config, shipped_file]
