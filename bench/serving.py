"""Serving under load: the shipped gunicorn and nginx, wrk, and what each process spends."""

import re
import statistics
import subprocess
import tempfile
from contextlib import contextmanager

import psutil
import requests

from deploy.gunicorn_process import Gunicorn
from deploy.nginx_process import Nginx

WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@contextmanager
def served(environment, app=None, ready_path="/healthz", options=()):
    """gunicorn (shipped config, plus `options`) behind nginx (the loopback site).

    Yields (nginx, the gunicorn master's psutil.Process), once `ready_path`
    answers through nginx.
    """
    gunicorn = Gunicorn(environment, app=app, options=options)
    nginx = None
    try:
        gunicorn.wait_until_serving(ready_path)
        nginx = Nginx([gunicorn.port])
        nginx.wait_until_serving(ready_path)
        yield nginx, psutil.Process(gunicorn.process.pid)
    finally:
        if nginx is not None:
            nginx.stop()
        gunicorn.stop()


def wrk(nginx, path, token, connections, duration, method="GET", headers=()):
    """req/s, p50 and p99 (ms), and non-2xx/3xx answers of `duration` seconds of wrk.

    `headers`: more headers, as ((name, value), ...).
    """
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    headers = {**({"X-Auth-Token": token} if token else {}), **dict(headers)}
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(f'wrk.method = "{method}"\n')
        script.flush()
        output = subprocess.run(
            [*command, "-s", script.name, f"{nginx.url}{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    latency = {
        f"p{p}": float(value) * UNIT_MS[unit] for p, value, unit in WRK_LATENCY.findall(output)
    }
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    answered = re.search(r"(\d+) requests in", output)
    _settle(method, f"{nginx.url}{path}", headers)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        **latency,
        "errors": (int(failed.group(1)) if failed else 0)
        + (sum(int(count) for count in socket_errors.groups()) if socket_errors else 0),
        "requests": int(answered.group(1)),
    }


def _settle(method, url, headers):
    """Return once the same request, sent after the load, is answered.

    Requests the load left queued in gunicorn are then done, instead of
    taking the workers from the next measurement.
    """
    requests.request(method, url, headers=headers, timeout=(2, 600)).raise_for_status()


def median_cell(cells):
    """Several wrk cells of one request as one: the median of each rate and latency, all errors."""
    return {
        **{key: statistics.median(cell[key] for cell in cells) for key in ("rps", "p50", "p99")},
        "errors": sum(cell["errors"] for cell in cells),
        "requests": sum(cell["requests"] for cell in cells),
        "runs": len(cells),
    }


def rss_mb(gunicorn_master):
    return sorted(
        round(worker.memory_info().rss / 2**20, 1) for worker in gunicorn_master.children()
    )


class CpuMeter:
    """CPU seconds (user + system) each tier's processes spend inside the `with` block."""

    def __init__(self, tiers):
        # tier name -> function returning its processes (re-read: workers come and go)
        self.tiers = tiers

    def _totals(self):
        totals = {}
        for name, processes in self.tiers.items():
            seconds = 0.0
            for process in processes():
                try:
                    times = process.cpu_times()
                    seconds += times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            totals[name] = seconds
        return totals

    def __enter__(self):
        self.started = self._totals()
        return self

    def __exit__(self, *exc_info):
        ended = self._totals()
        self.spent = {name: ended[name] - self.started[name] for name in self.tiers}


def tree(process):
    """A process and its children (a master and its workers)."""
    return lambda: [process, *process.children(recursive=True)]


def named(name):
    """Every process whose name is `name` (postgres backends, pgbouncer)."""
    return lambda: [
        process for process in psutil.process_iter(["name"]) if process.info["name"] == name
    ]
