"""nginx running the shipped site (app/serving/nginx_site.py) for tests, bench and cluster."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from app.serving.nginx_site import Site
from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    check_alive,
    free_port,
    listening,
    stop,
    wait_until_answering,
)

MAIN_CONFIGURATION = Path(__file__).resolve().parent / "nginx" / "main.conf"


def nginx_prefix():
    """A temporary nginx prefix: a main nginx.conf that includes site.conf (write that next)."""
    prefix = Path(tempfile.mkdtemp(prefix="image-catalogue-nginx-"))
    (prefix / "tmp").mkdir()
    shutil.copy(MAIN_CONFIGURATION, prefix / "nginx.conf")
    return prefix


def nginx_command(prefix, *options):
    return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), *options]


class Nginx:
    """nginx with the shipped site in front of gunicorn, from a temporary prefix.

    Loopback by default: plain HTTP on a free port. With `tls` =
    (server_name, certificate, key), the production site: HTTPS on one free
    port, the redirect on another. If another process takes a port before
    nginx binds it, new ones are tried.
    """

    ATTEMPTS = 5

    def __init__(self, upstream_ports, *, tls=None, metrics_allow=("127.0.0.1",)):
        self.prefix = nginx_prefix()
        self.error_log = self.prefix / "error.log"
        self.access_log = self.prefix / "access.log"
        self.tls, self.metrics_allow = tls, list(metrics_allow)
        for _ in range(self.ATTEMPTS):
            self.port, self.https_port = free_port(), free_port() if tls else None
            (self.prefix / "site.conf").write_text(self._site(upstream_ports).render())
            self.process = self._start()
            if not self._lost_a_port():
                return
        raise ProcessFailed(f"nginx could not bind its ports in {self.ATTEMPTS} attempts")

    @property
    def url(self):
        if self.tls:
            return f"https://{self.tls[0]}:{self.https_port}"
        return f"http://127.0.0.1:{self.port}"

    def _site(self, upstream_ports):
        site = Site(
            upstreams=[f"127.0.0.1:{port}" for port in upstream_ports],
            http_address=f"127.0.0.1:{self.port}",
            access_log=str(self.access_log),
            metrics_allow=self.metrics_allow,
        )
        if self.tls:
            site.server_name, site.certificate, site.certificate_key = self.tls
            site.https_address = f"127.0.0.1:{self.https_port}"
        return site

    def _start(self):
        return subprocess.Popen(
            nginx_command(self.prefix, "-g", "daemon off;"), stderr=subprocess.DEVNULL
        )

    def _lost_a_port(self):
        """Wait until nginx listens (True if it exited because a port was taken)."""
        ports = [port for port in (self.port, self.https_port) if port]
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
                if "Address already in use" in log:
                    return True
                check_alive(self.process, self.error_log)
            if all(listening(port) for port in ports):
                return False
            time.sleep(0.05)
        raise ProcessFailed(f"nginx did not listen on {ports} within the deadline")

    def wait_until_serving(self, path="/healthz", timeout=READY_DEADLINE_SECONDS, **options):
        """Wait until `path` answers through nginx (so the upstream answers too); return self."""
        wait_until_answering(
            self.url + path, self.process, timeout=timeout, log_path=self.error_log, **options
        )
        return self

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.prefix, ignore_errors=True)
