"""make run (deploy/localserver.py): demo catalogue, token, gunicorn, and a curl line that works."""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import requests

from deploy.processes import READY_DEADLINE_SECONDS, free_port, stop
from helpers import ROOT

CURL = re.compile(r"curl -s -H 'X-Auth-Token: (\S+)' '(\S+)'")


def _lines(stream):
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _curl_line(lines):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    seen = []
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        if line is None:
            break
        seen.append(line)
        if found := CURL.search(line):
            return found.groups()
    pytest.fail(f"make run printed no curl line; it printed: {''.join(seen)}")


def test_make_run_loads_the_demo_catalogue_and_its_curl_line_answers(empty_database):
    launcher = subprocess.Popen(
        [sys.executable, "-m", "deploy.localserver"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": empty_database, "PORT": str(free_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        token, url = _curl_line(_lines(launcher.stdout))
        response = requests.get(url, headers={"X-Auth-Token": token}, timeout=30)
        gunicorn = psutil.Process(launcher.pid).children()
    finally:
        launcher.send_signal(signal.SIGTERM)
        stop(launcher)
        launcher.stdout.close()

    assert response.status_code == 200
    images = response.json()["images"]
    assert "cirros" in {image["name"] for image in images}
    assert {image["disk_format"] for image in images} == {"qcow2"}
    assert launcher.returncode == 0
    assert not any(process.is_running() for process in gunicorn)


def test_make_run_refuses_a_port_that_already_answers(live_server):
    port = live_server.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "deploy.localserver"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "postgresql://unused@127.0.0.1:9/none", "PORT": port},
        capture_output=True,
        text=True,
        timeout=READY_DEADLINE_SECONDS,
    )
    assert result.returncode == 1
    assert f"Something already answers on http://127.0.0.1:{port}/" in result.stderr
