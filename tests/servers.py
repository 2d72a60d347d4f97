"""Start the service's real processes for tests: gunicorn and nginx with the shipped configs."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(database_url, port, **environment):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "wsgi:app",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **environment,
        },
    )


def wait_until_healthy(base_url, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with status {process.returncode}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not answer within {timeout} s")


def stop(process, timeout=30):
    process.terminate()
    process.wait(timeout=timeout)


class Nginx:
    """deploy/nginx.conf with its upstream ports and listen port replaced."""

    def __init__(self, upstream_ports, listen_port):
        self.prefix = Path(tempfile.mkdtemp(prefix="image-catalogue-nginx-"))
        (self.prefix / "tmp").mkdir()
        config = (ROOT / "deploy" / "nginx.conf").read_text()
        for shipped, port in zip((8080, 8081), upstream_ports, strict=True):
            config = re.sub(rf"server 127\.0\.0\.1:{shipped} ", f"server 127.0.0.1:{port} ", config)
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
            ]
        )

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.prefix, ignore_errors=True)
