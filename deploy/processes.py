"""Waiting for started processes by events, never by time.

A process counts as ready when the thing its user will call answers; waits
end at a generous deadline, or at once if the process died.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import requests

# Long enough for a slow, busy machine importing the app in every worker.
READY_DEADLINE_SECONDS = float(os.environ.get("READY_DEADLINE_SECONDS") or 180)


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
        check_alive(process, log_path)
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
        check_alive(process, log_path)
        if ready():
            return
        time.sleep(0.1)
    raise ProcessFailed(f"{what} was not ready within {timeout:.0f} s")


def check_alive(process, log_path=None):
    """Raise ProcessFailed, with the end of its log, if `process` has exited."""
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


def listening(port):
    """True if something accepts TCP connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop(process, timeout=60):
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
