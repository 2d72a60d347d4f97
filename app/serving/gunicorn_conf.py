"""gunicorn settings for the image catalogue, used by `image-catalogue serve`.

serve passes the bind address and the worker count from the configuration
([DEFAULT] bind_host, bind_port, workers) on gunicorn's command line.
Loaded by path, never imported as part of `app`: the master process must not
load the service's code, which a reload (HUP) would then not replace. Reading
this file has no side effects; the hooks below act when gunicorn starts.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# systemd/image-catalogue@.service names each instance and its pidfile.
proc_name = os.environ.get("GUNICORN_PROC_NAME") or "image-catalogue"
pidfile = os.environ.get("GUNICORN_PIDFILE") or None
# Sync workers, about two per core plus one (serve's default): on two cores
# no other count was clearly better at 16 connections, preload_app only at
# 64, and gthread was worse (bench/results/gunicorn.md). No preload_app: a
# reload must load new code.
worker_class = "sync"
# Behind nginx, which buffers slow clients; a request silent longer is stuck (uploads and
# downloads of image data show signs of life, app/web/heartbeat.py; serve gives v1 writes more).
timeout = 30
# SIGTERM and SIGHUP let in-flight requests finish within this time.
graceful_timeout = 20
keepalive = 5
# Close to the nginx site's limits (templates/nginx-site.conf.in): a longer
# request line is a 414, a longer header field a 400.
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 100
# gunicorn 25+ opens a control socket at ~/.gunicorn/gunicorn.ctl, which two
# instances on one machine would fight over; the service does not use it.
control_socket_disable = True
# The app writes its own JSON access log line per request (app/web/observability.py).
accesslog = None

# The folder holding the `app` package this file belongs to: site-packages when installed, the
# checkout in development. gunicorn puts its working folder first on sys.path, and `python -c`
# the current one, where an app/ folder (a clone's, or unrelated code) would be imported instead
# of the package that is serving; the startup check and the workers look here first.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_STARTUP_CHECK = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from app.serving import exit_on_startup_problem; exit_on_startup_problem()"
)

# Prometheus multiprocess mode: each worker writes its samples under
# PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. One folder per gunicorn
# instance (a temporary one if unset), emptied at start so a dead instance's
# counts do not linger.
_TEMPORARY_METRICS_DIR = "IMAGE_CATALOGUE_TEMPORARY_METRICS_DIR"


def on_starting(server):
    # Refuse at once, in one line, instead of every worker failing to boot.
    # The settings are checked in a child process: importing the app into the
    # master would make the workers of a reload (HUP) fork its old code.
    check = subprocess.run(
        [sys.executable, "-c", _STARTUP_CHECK, _PACKAGE_ROOT],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode:
        raise SystemExit(f"image-catalogue: {check.stderr.strip().splitlines()[-1]}")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="image-catalogue-metrics-")
        os.environ[_TEMPORARY_METRICS_DIR] = "1"
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)


def post_fork(server, worker):
    sys.path.insert(0, _PACKAGE_ROOT)
    # In the worker, which imports the app anyway: long uploads and downloads
    # show it is alive (app/web/heartbeat.py).
    from app.web import heartbeat

    heartbeat.attach(worker)


# Image metadata headers may be spelled with underscores (x-image-meta-property-os_distro:
# serve maps them for v1 writes, `--header-map dangerous`); no other header may. Mapped, a
# client's X-Forwarded_Host would join the proxy's X-Forwarded-Host, and be trusted.
_UNDERSCORES_ALLOWED = "X-IMAGE-META-"


def pre_request(worker, req):
    req.headers = [
        (name, value)
        for name, value in req.headers
        if "_" not in name or name.startswith(_UNDERSCORES_ALLOWED)
    ]


def on_exit(server):
    if os.environ.get(_TEMPORARY_METRICS_DIR):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
