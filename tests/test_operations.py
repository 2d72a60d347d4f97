import datetime as dt
import io
import json
import logging
import os
import random
import re
import signal
import string
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from app.db import db
from app.loading import upsert
from app.models import ApiToken
from app.tokens import hash_token
from app.web.observability import KNOWN_METHODS, JsonFormatter
from deploy.stack import READY_DEADLINE_SECONDS
from helpers import error_message
from servers import start_service

DETAIL = "/v1.1/images/detail"
RECORD = {
    "name": "fresh",
    "size": 1,
    "virtual_size": None,
    "status": "active",
    "disk_format": "raw",
    "container_format": "bare",
    "checksum": None,
    "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "deleted_at": None,
    "deleted": False,
    "is_public": True,
    "protected": False,
    "min_ram": 0,
    "min_disk": 0,
    "owner": "p1",
    "properties": {},
    "members": [],
}


def _sample(client, metric, **labels):
    return _sample_of(client.get("/metrics").get_data(as_text=True), metric, **labels)


def _sample_of(text, metric, **labels):
    label_text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = re.escape(f"{metric}{{{label_text}}}" if labels else metric)
    found = re.search(rf"^{series} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_by_route_and_status(client, make_token):
    token = make_token()
    requests_total = "image_catalogue_requests_total"
    latency = "image_catalogue_request_duration_seconds_count"
    ok = {"method": "GET", "route": DETAIL, "status": "200"}
    unauthorized = {**ok, "status": "401"}
    before = [
        _sample(client, requests_total, **ok),
        _sample(client, requests_total, **unauthorized),
    ]
    latency_before = _sample(client, latency, route=DETAIL)
    client.get(DETAIL, headers={"X-Auth-Token": token})
    client.get(DETAIL, headers={"X-Auth-Token": token})
    client.get(DETAIL)
    after = [_sample(client, requests_total, **ok), _sample(client, requests_total, **unauthorized)]
    assert after == [before[0] + 2, before[1] + 1]
    assert _sample(client, latency, route=DETAIL) == latency_before + 3


def test_connection_gauge_counts_the_read_paths_open_connections(make_app, make_token):
    client = make_app().test_client()
    connections = "image_catalogue_db_connections"
    before = _sample(client, connections, target="primary")
    client.get(DETAIL, headers={"X-Auth-Token": make_token()})
    # A new app's read pool opened its one connection, and keeps it.
    assert _sample(client, connections, target="primary") == before + 1
    client.get(DETAIL, headers={"X-Auth-Token": make_token()})
    assert _sample(client, connections, target="primary") == before + 1


def test_database_errors_are_counted(make_app):
    app = make_app(
        SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1
    )
    client = app.test_client()
    before = _sample(client, "image_catalogue_db_errors_total", kind="unavailable")
    client.get("/readyz")
    assert _sample(client, "image_catalogue_db_errors_total", kind="unavailable") == before + 1


@pytest.fixture
def log_lines(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    app.logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    app.logger.removeHandler(handler)


def test_access_log_is_json_with_the_request_id(client, make_token, log_lines):
    response = client.get(f"{DETAIL}?limit=3", headers={"X-Auth-Token": make_token()})
    (entry,) = [line for line in log_lines() if line["message"] == "request"]
    assert entry["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert entry["status"] == 200 and entry["path"] == DETAIL and entry["query"] == "limit=3"
    assert entry["duration_ms"] >= 0
    assert "X-Auth-Token" not in json.dumps(entry)


def test_error_log_carries_request_id_and_traceback(make_app):
    app = make_app()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    app.logger.addHandler(handler)

    @app.get("/explode")
    def explode():
        raise RuntimeError("boom")

    response = app.test_client().get("/explode")
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    (error,) = [entry for entry in entries if entry["message"] == "unexpected error"]
    assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert "RuntimeError: boom" in error["exception"]


def test_long_query_string_is_414(client, make_token):
    response = client.get(f"{DETAIL}?name={'x' * 5000}", headers={"X-Auth-Token": make_token()})
    assert "4096" in error_message(response, 414)


def test_oversized_headers_are_431(client, make_token):
    headers = {"X-Auth-Token": make_token(), "X-Padding": "x" * 9000}
    assert error_message(client.get(DETAIL, headers=headers), 431)


def test_tokens_revoke_by_token_and_by_project(app, make_app, make_token):
    client = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    runner = app.test_cli_runner()
    first, second, other = make_token("p1"), make_token("p1"), make_token("p2")
    result = runner.invoke(args=["tokens", "revoke", first])
    assert result.output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": first}), 401)
    assert client.get(DETAIL, headers={"X-Auth-Token": second}).status_code == 200
    assert runner.invoke(args=["tokens", "revoke", "--project", "p1"]).output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": second}), 401)
    assert client.get(DETAIL, headers={"X-Auth-Token": other}).status_code == 200
    assert runner.invoke(args=["tokens", "revoke"]).exit_code == 2


def test_a_token_starting_with_a_dash_is_revoked_after_double_dash(app, make_app):
    # Version 1.0 issued URL-safe base64 tokens, which may start with "-".
    legacy = "-w" + "x" * 41
    with app.app_context():
        db.session.add(ApiToken(token_hash=hash_token(legacy), project_id="p1", roles=["member"]))
        db.session.commit()
    client = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    assert client.get(DETAIL, headers={"X-Auth-Token": legacy}).status_code == 200
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", "--", legacy])
    assert result.output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": legacy}), 401)


def test_openapi_document_describes_the_listing(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operation = document["paths"]["/v1.1/images/detail"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"name", "size_min", "changes-since", "sort_key", "marker", "limit"} <= names
    image = document["components"]["schemas"]["ImageDetail"]["properties"]
    assert len(image) == 18
    assert set(document["paths"]) == {
        "/v1.1/images/detail",
        "/v1/images/detail",
        "/v1.1/images",
        "/v1/images",
    }


def _live_sample(base_url, metric, **labels):
    return _sample_of(requests.get(f"{base_url}/metrics", timeout=30).text, metric, **labels)


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
        assert _live_sample(server.url, "image_catalogue_requests_total", **ok) == sent

        master = psutil.Process(server.process.pid)
        victim = master.children()[0].pid
        os.kill(victim, signal.SIGKILL)
        while {worker.pid for worker in master.children()} & {victim} or len(master.children()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.05)
        server.wait_until_serving()
        assert _live_sample(server.url, "image_catalogue_requests_total", **ok) == sent
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


def test_credential_parameters_are_masked_in_the_access_log(client, make_token, log_lines):
    token = make_token()
    client.get(
        f"{DETAIL}?X-Auth-Token={token}&name=cirros&password=hunter2&access_token=abc",
        headers={"X-Auth-Token": token},
    )
    (entry,) = [line for line in log_lines() if line["message"] == "request"]
    assert entry["query"] == "X-Auth-Token=***&name=cirros&password=***&access_token=***"
    assert token not in json.dumps(entry)


def test_metrics_tell_how_fresh_the_catalogue_is(client, app):
    newest = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert not re.search(
        r"^image_catalogue_newest_update_timestamp_seconds ",
        client.get("/metrics").get_data(as_text=True),
        re.MULTILINE,
    )
    records = [
        (1, {**RECORD, "id": uuid.uuid4(), "updated_at": newest}),
        (2, {**RECORD, "id": uuid.uuid4(), "updated_at": newest - dt.timedelta(days=3)}),
    ]
    with app.app_context():
        before = time.time()
        upsert.load(db.session, records, source="import")
    assert _sample(client, "image_catalogue_newest_update_timestamp_seconds") == newest.timestamp()
    loaded = _sample(client, "image_catalogue_last_load_timestamp_seconds", source="import")
    assert before - 1 <= loaded <= time.time() + 1
    assert _sample(client, "image_catalogue_last_load_timestamp_seconds", source="glance") == 0
