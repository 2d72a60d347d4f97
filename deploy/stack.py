"""Start the shipped stack's processes: gunicorn and nginx with the configs in deploy/.

Used by make run (app/localserver.py), make bench and the tests that need a
real server.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_CONFIG = ROOT / "deploy" / "nginx.conf"
SHIPPED_UPSTREAM_PORTS = (8080, 8081)


def start_gunicorn(wsgi_target="wsgi:app", environment=None, **popen_options):
    """gunicorn with deploy/gunicorn.conf.py; PORT, DATABASE_URL... come from `environment`."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), wsgi_target],
        cwd=ROOT,
        env={**os.environ, **(environment or {})},
        **popen_options,
    )


def wait_until_answering(url, process, timeout=60):
    """Wait until `url` answers below 500, failing early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with status {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(process, timeout=60):
    process.terminate()
    process.wait(timeout=timeout)


class Nginx:
    """deploy/nginx.conf, run from a temporary prefix, with its ports replaced.

    `upstream_ports` replaces the shipped 8080 (and 8081; with one port the
    second upstream line is dropped); `listen_port` replaces 8000.
    """

    def __init__(self, upstream_ports, listen_port):
        self.prefix = Path(tempfile.mkdtemp(prefix="image-catalogue-nginx-"))
        (self.prefix / "tmp").mkdir()
        config = NGINX_CONFIG.read_text()
        for shipped, port in zip(SHIPPED_UPSTREAM_PORTS, upstream_ports, strict=False):
            config = config.replace(f"server 127.0.0.1:{shipped} ", f"server 127.0.0.1:{port} ")
        if len(upstream_ports) == 1:
            config = re.sub(r"\n\s*server 127\.0\.0\.1:8081 .*;", "", config)
        config = config.replace("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{listen_port};")
        (self.prefix / "nginx.conf").write_text(config)
        self.process = subprocess.Popen(
            [
                "nginx",
                "-p",
                str(self.prefix),
                "-c",
                str(self.prefix / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            # A refused connection during a restart is an error line each;
            # callers judge by the answers clients got instead.
            stderr=subprocess.DEVNULL,
        )

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.prefix, ignore_errors=True)
