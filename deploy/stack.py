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

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_CONFIG = ROOT / "deploy" / "nginx.conf"
SHIPPED_UPSTREAM_PORTS = (8080, 8081)
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


def start_gunicorn(environment=None, *, wsgi_target="wsgi:app", **popen_options):
    """gunicorn with deploy/gunicorn.conf.py; PORT, DATABASE_URL... come from `environment`."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), wsgi_target],
        cwd=ROOT,
        env={**os.environ, **(environment or {})},
        **popen_options,
    )


class Gunicorn:
    """A started gunicorn whose log goes to a file, shown when the process fails.

    With port 0 the kernel picks a free port and gunicorn reports it in its
    log ("Listening at: ..."), so no other process can take it in between.
    """

    def __init__(self, environment=None, *, wsgi_target="wsgi:app", port=0, **popen_options):
        self.log_dir = Path(tempfile.mkdtemp(prefix="image-catalogue-gunicorn-"))
        self.log_path = self.log_dir / "gunicorn.log"
        with self.log_path.open("wb") as log:
            self.process = start_gunicorn(
                {**(environment or {}), "PORT": str(port)},
                wsgi_target=wsgi_target,
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


class Nginx:
    """deploy/nginx.conf, run from a temporary prefix, with its ports replaced.

    `upstream_ports` replaces the shipped 8080 (and 8081; with one port the
    second upstream line is dropped). nginx listens on a free port; if another
    process takes that port before nginx binds it, a new one is tried.
    """

    ATTEMPTS = 5

    def __init__(self, upstream_ports):
        self.prefix = Path(tempfile.mkdtemp(prefix="image-catalogue-nginx-"))
        (self.prefix / "tmp").mkdir()
        self.error_log = self.prefix / "error.log"
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            self._write_config(upstream_ports)
            self.process = self._start()
            if not self._lost_the_port():
                return
        raise ProcessFailed(f"nginx could not bind a port in {self.ATTEMPTS} attempts")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self, upstream_ports):
        config = NGINX_CONFIG.read_text()
        for shipped, port in zip(SHIPPED_UPSTREAM_PORTS, upstream_ports, strict=False):
            config = config.replace(f"server 127.0.0.1:{shipped} ", f"server 127.0.0.1:{port} ")
        if len(upstream_ports) == 1:
            config = re.sub(r"\n\s*server 127\.0\.0\.1:8081 .*;", "", config)
        config = config.replace("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{self.port};")
        config = config.replace("error_log stderr warn;", f"error_log {self.error_log} warn;")
        (self.prefix / "nginx.conf").write_text(config)

    def _start(self):
        return subprocess.Popen(
            [
                "nginx",
                "-p",
                str(self.prefix),
                "-c",
                str(self.prefix / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stderr=subprocess.DEVNULL,
        )

    def _lost_the_port(self):
        """Wait until nginx listens on its port (True if it exited because the port was taken)."""
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
                if "Address already in use" in log:
                    return True
                _check_alive(self.process, self.error_log)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return False
            time.sleep(0.05)
        raise ProcessFailed(f"nginx did not listen on {self.port} within the deadline")

    def wait_until_serving(self, path="/healthz", timeout=READY_DEADLINE_SECONDS):
        """Wait until `path` answers through nginx (so the upstream answers too); return self."""
        wait_until_answering(
            self.url + path, self.process, timeout=timeout, log_path=self.error_log
        )
        return self

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.prefix, ignore_errors=True)
