"""/metrics: requests, database reads and errors, freshness; gunicorn's workers added up."""

import datetime as dt
import os
import random
import re
import signal
import string
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests

from app.db import db
from app.loading import jsonl, upsert
from app.web.observability import KNOWN_METHODS
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import DETAIL, REQUESTS_TOTAL, import_line, scraped_total, served_total
from servers import start_service


def test_metrics_count_requests_by_route_and_status(client, make_token):
    token = make_token()
    latency = "image_catalogue_request_duration_seconds_count"
    ok = {"method": "GET", "route": DETAIL, "status": "200"}
    unauthorized = {**ok, "status": "401"}
    before = [
        served_total(client, REQUESTS_TOTAL, **ok),
        served_total(client, REQUESTS_TOTAL, **unauthorized),
    ]
    latency_before = served_total(client, latency, route=DETAIL)
    client.get(DETAIL, headers={"X-Auth-Token": token})
    client.get(DETAIL, headers={"X-Auth-Token": token})
    client.get(DETAIL)
    after = [
        served_total(client, REQUESTS_TOTAL, **ok),
        served_total(client, REQUESTS_TOTAL, **unauthorized),
    ]
    assert after == [before[0] + 2, before[1] + 1]
    assert served_total(client, latency, route=DETAIL) == latency_before + 3


def test_connection_gauge_counts_the_read_paths_open_connections(make_app, make_token):
    client = make_app().test_client()
    connections = "image_catalogue_db_connections"
    before = served_total(client, connections, target="primary")
    client.get(DETAIL, headers={"X-Auth-Token": make_token()})
    # A new app's read pool opened its one connection, and keeps it.
    assert served_total(client, connections, target="primary") == before + 1
    client.get(DETAIL, headers={"X-Auth-Token": make_token()})
    assert served_total(client, connections, target="primary") == before + 1


def test_database_errors_are_counted(make_app):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1)
    client = app.test_client()
    before = served_total(client, "image_catalogue_db_errors_total", kind="unavailable")
    client.get("/readyz")
    assert served_total(client, "image_catalogue_db_errors_total", kind="unavailable") == before + 1


def _counting_workers(metrics_dir):
    return {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("counter_*.db")}


def test_metrics_add_up_all_gunicorn_workers_and_outlive_a_killed_one(
    app, database_url, make_token, tmp_path
):
    headers = {"X-Auth-Token": make_token()}
    metrics_dir = tmp_path / "metrics"
    server = start_service(database_url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    ok = {"method": "GET", "route": DETAIL, "status": "200"}
    try:
        sent = 0
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        # Concurrent requests until both workers have answered some.
        with ThreadPoolExecutor(4) as pool:
            while len(_counting_workers(metrics_dir)) < 2:
                assert time.monotonic() < deadline, "only one worker ever answered"
                answers = pool.map(
                    lambda _: requests.get(server.url + DETAIL, headers=headers, timeout=30),
                    range(20),
                )
                assert {answer.status_code for answer in answers} == {200}
                sent += 20
        assert scraped_total(f"{server.url}/metrics", REQUESTS_TOTAL, **ok) == sent

        master = psutil.Process(server.process.pid)
        victim = master.children()[0].pid
        os.kill(victim, signal.SIGKILL)
        while {worker.pid for worker in master.children()} & {victim} or len(master.children()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.05)
        server.wait_until_serving()
        assert scraped_total(f"{server.url}/metrics", REQUESTS_TOTAL, **ok) == sent
    finally:
        server.stop()


def _series(client):
    text = client.get("/metrics").get_data(as_text=True)
    return set(re.findall(r"^(image_catalogue_\w+\{[^}]*\})", text, re.MULTILINE))


def test_junk_methods_and_paths_add_no_metric_series(client):
    rng = random.Random(13)

    def junk(count):
        for _ in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=20))
            path = "/" + "/".join(
                "".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(3)
            )
            client.open(path, method=method)
            client.open(path)
            client.open(DETAIL + path, method=method)

    junk(3)  # the closed sets' own series ("unmatched", "other", 404, 405) appear once
    _series(client)  # and so do /metrics' own
    before = _series(client)
    junk(300)
    after = _series(client)
    assert after == before
    assert set(re.findall(r'method="([^"]*)"', " ".join(after))) <= KNOWN_METHODS | {"other"}


def test_metrics_tell_how_fresh_the_catalogue_is(client, app):
    newest = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert not re.search(
        r"^image_catalogue_newest_update_timestamp_seconds ",
        client.get("/metrics").get_data(as_text=True),
        re.MULTILINE,
    )
    lines = [
        import_line(id=str(uuid.uuid4()), updated_at=newest.isoformat()),
        import_line(id=str(uuid.uuid4()), updated_at=(newest - dt.timedelta(days=3)).isoformat()),
    ]
    with app.app_context():
        before = time.time()
        upsert.load(db.session, jsonl.parse_lines(lines), source="import")
    assert (
        served_total(client, "image_catalogue_newest_update_timestamp_seconds")
        == newest.timestamp()
    )
    loaded = served_total(client, "image_catalogue_last_load_timestamp_seconds", source="import")
    assert before - 1 <= loaded <= time.time() + 1
    assert served_total(client, "image_catalogue_last_load_timestamp_seconds", source="glance") == 0
