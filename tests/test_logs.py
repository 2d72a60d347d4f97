"""JSON logs: a line per request with its request id, errors with tracebacks, no credentials."""

import io
import json
import logging

import pytest

from app.config import ConfigurationError
from app.web.observability import JsonFormatter
from helpers import DETAIL


def _logged(app):
    """The app's log lines from now on, as parsed JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    app.logger.addHandler(handler)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def every_request(make_app):
    """(client, log lines) of an app that logs every request (ACCESS_LOG=all)."""
    app = make_app(ACCESS_LOG="all")
    return app.test_client(), _logged(app)


def _requests(lines):
    return [line for line in lines() if line["message"] == "request"]


def test_access_log_is_json_with_the_request_id(every_request, make_token):
    client, log_lines = every_request
    response = client.get(f"{DETAIL}?limit=3", headers={"X-Auth-Token": make_token()})
    (entry,) = _requests(log_lines)
    assert entry["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert entry["status"] == 200 and entry["path"] == DETAIL and entry["query"] == "limit=3"
    assert entry["duration_ms"] >= 0
    assert "X-Auth-Token" not in json.dumps(entry)


def test_error_log_carries_request_id_and_traceback(make_app):
    app = make_app()
    log_lines = _logged(app)

    @app.get("/explode")
    def explode():
        raise RuntimeError("boom")

    response = app.test_client().get("/explode")
    (error,) = [entry for entry in log_lines() if entry["message"] == "unexpected error"]
    assert error["request_id"] == response.headers["X-Openstack-Request-Id"]
    assert "RuntimeError: boom" in error["exception"]


def test_credential_parameters_are_masked_in_the_access_log(every_request, make_token):
    client, log_lines = every_request
    token = make_token()
    client.get(
        f"{DETAIL}?X-Auth-Token={token}&name=cirros&password=hunter2&access_token=abc",
        headers={"X-Auth-Token": token},
    )
    (entry,) = _requests(log_lines)
    assert entry["query"] == "X-Auth-Token=***&name=cirros&password=***&access_token=***"
    assert token not in json.dumps(entry)


def test_by_default_only_failed_and_slow_requests_are_logged(make_app, make_token):
    headers = {"X-Auth-Token": make_token()}
    app = make_app()  # ACCESS_LOG=failures
    client, log_lines = app.test_client(), _logged(app)
    client.get(DETAIL, headers=headers)
    client.get(DETAIL)
    client.get(f"{DETAIL}?limit=x", headers=headers)
    assert [entry["status"] for entry in _requests(log_lines)] == [401, 400]
    slow = make_app(SLOW_REQUEST_MS=0)  # every request is slower than 0 ms
    client, log_lines = slow.test_client(), _logged(slow)
    client.get(DETAIL, headers=headers)
    assert [entry["status"] for entry in _requests(log_lines)] == [200]


def test_an_unknown_access_log_mode_refuses_to_start(make_app):
    with pytest.raises(
        ConfigurationError, match=r"ACCESS_LOG='some' is not valid for \[logging\] access_log"
    ):
        make_app(ACCESS_LOG="some")
