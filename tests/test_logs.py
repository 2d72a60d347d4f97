"""JSON logs: a line per request with its request id, errors with tracebacks, no credentials."""

import io
import json
import logging

import pytest

from app.web.observability import JsonFormatter

DETAIL = "/v1.1/images/detail"


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


def test_credential_parameters_are_masked_in_the_access_log(client, make_token, log_lines):
    token = make_token()
    client.get(
        f"{DETAIL}?X-Auth-Token={token}&name=cirros&password=hunter2&access_token=abc",
        headers={"X-Auth-Token": token},
    )
    (entry,) = [line for line in log_lines() if line["message"] == "request"]
    assert entry["query"] == "X-Auth-Token=***&name=cirros&password=***&access_token=***"
    assert token not in json.dumps(entry)
