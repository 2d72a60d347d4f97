"""Start the shipped stack's processes (gunicorn, nginx) and wait for them by events, never by time.

Used by make run (app/localserver.py), make bench and the tests that need a
real server. A process counts as ready when the thing its user will call
answers; waits end at a generous deadline, or at once if the process died.
"""

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

from deploy.nginx import Site

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
# Long enough for a slow, busy machine importing the app in every worker.
READY_DEADLINE_SECONDS = float(os.environ.get("READY_DEADLINE_SECONDS") or 180)
_LISTENING = re.compile(r"Listening at: http://[^:]+:(\d+)")


class ProcessFailed(RuntimeError):
    """A process exited, or never became ready, before its deadline."""


def wait_until_answering(
    url,
    process,
    *,
    accept=lambda response: response.status_code < 500,
    timeout=READY_DEADLINE_SECONDS,
    log_path=None,
    **request_options,
):
    """Wait until a GET of `url` gives a response `accept` takes; return that response.

    Any failure to connect or to read an answer (refused, reset, read timeout)
    means "not yet"; so does an answer `accept` refuses. Fails at once if
    `process` exits.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        _check_alive(process, log_path)
        try:
            response = requests.get(url, timeout=(2, 10), **request_options)
        except requests.RequestException as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if accept(response):
                return response
            last = f"status {response.status_code}"
        time.sleep(0.1)
    raise ProcessFailed(f"{url} did not answer within {timeout:.0f} s (last: {last})")


def wait_until_ready(process, ready, what, *, log_path=None, timeout=READY_DEADLINE_SECONDS):
    """Poll `ready()` until it is true; fail at once if `process` exits, or at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(process, log_path)
        if ready():
            return
        time.sleep(0.1)
    raise ProcessFailed(f"{what} was not ready within {timeout:.0f} s")


def _check_alive(process, log_path=None):
    if process.poll() is None:
        return
    tail = ""
    if log_path is not None and Path(log_path).exists():
        tail = "; its log ends with:\n" + "\n".join(
            Path(log_path).read_text(errors="replace").splitlines()[-20:]
        )
    raise ProcessFailed(f"{process.args[:4]} exited with status {process.returncode}{tail}")


def answers(url):
    """True if something already answers HTTP at `url` (a stale server, another instance)."""
    try:
        requests.get(url, timeout=(1, 5))
    except requests.RequestException:
        return False
    return True


def free_port():
    """A loopback port nothing listens on now. Callers must retry if it is taken meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process, timeout=60):
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_gunicorn(
    environment=None, *, wsgi_target="wsgi:app", options=(), root=ROOT, **popen_options
):
    """gunicorn with deploy/gunicorn.conf.py (and command-line `options` over it).

    PORT, DATABASE_URL, WEB_CONCURRENCY... come from `environment`; the code
    and the config from the checkout at `root`.
    """
    config = Path(root) / GUNICORN_CONFIG.relative_to(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(config), *options, wsgi_target],
        cwd=root,
        env={**os.environ, **(environment or {})},
        **popen_options,
    )


class Gunicorn:
    """A started gunicorn whose log goes to a file, shown when the process fails.

    With port 0 the kernel picks a free port and gunicorn reports it in its
    log ("Listening at: ..."), so no other process can take it in between.
    """

    def __init__(
        self,
        environment=None,
        *,
        wsgi_target="wsgi:app",
        port=0,
        options=(),
        root=ROOT,
        **popen_options,
    ):
        self.log_dir = Path(tempfile.mkdtemp(prefix="image-catalogue-gunicorn-"))
        self.log_path = self.log_dir / "gunicorn.log"
        with self.log_path.open("wb") as log:
            self.process = start_gunicorn(
                {**(environment or {}), "PORT": str(port)},
                wsgi_target=wsgi_target,
                options=options,
                root=root,
                stdout=subprocess.DEVNULL,
                stderr=log,
                **popen_options,
            )
        self.port = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self, path="/healthz", timeout=READY_DEADLINE_SECONDS):
        """Wait for the bound port in the log, then until `path` answers; return self."""
        deadline = time.monotonic() + timeout
        while self.port is None:
            _check_alive(self.process, self.log_path)
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif time.monotonic() > deadline:
                raise ProcessFailed(f"gunicorn did not bind within {timeout:.0f} s")
            else:
                time.sleep(0.05)
        wait_until_answering(
            self.url + path,
            self.process,
            timeout=max(deadline - time.monotonic(), 1),
            log_path=self.log_path,
        )
        return self

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.log_dir, ignore_errors=True)


NGINX_MAIN = """worker_processes auto;
pid nginx.pid;
error_log error.log warn;
events {
    worker_connections 1024;
}
http {
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include site.conf;
}
"""


def nginx_prefix():
    """A temporary nginx prefix: a main nginx.conf that includes site.conf (write that next)."""
    prefix = Path(tempfile.mkdtemp(prefix="image-catalogue-nginx-"))
    (prefix / "tmp").mkdir()
    (prefix / "nginx.conf").write_text(NGINX_MAIN)
    return prefix


def nginx_command(prefix, *options):
    return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), *options]


class Nginx:
    """nginx with the shipped site (deploy/nginx.py) in front of gunicorn, from a temporary prefix.

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
                _check_alive(self.process, self.error_log)
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


def listening(port):
    """True if something accepts TCP connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
