"""Drills with the shipped HAProxy configuration in front of two instances: forwarded headers,
the allow-list for /metrics and /readyz, draining by /healthcheck, image-show's largest answers."""

import http.client
import json
import re
import time
from pathlib import Path

import pytest
import requests

from app.serving.haproxy_config import HAProxyConfig
from deploy.haproxy_process import HAProxy
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import REQUESTS_TOTAL, headers_filled_line, metric_total
from servers import start_service

pytestmark = pytest.mark.drill

# Not 127.0.0.1, the one address the allow-list holds: a client from outside it.
OUTSIDER = "127.0.0.2"


class Served:
    """Two instances (TRUSTED_PROXIES=1, ALLOWED_HOSTS=the server name, a disable file each)
    behind haproxy running the rendered configuration, HTTPS on a loopback port."""

    def __init__(self, database_url, tls, folder):
        self.server_name, certificate, key, self.ca = tls
        self.disable_files = [folder / f"healthcheck_disable_{number}" for number in (1, 2)]
        # HAProxy's crt: one PEM file, the certificate chain then its key.
        pem = folder / "combined.pem"
        pem.write_text(Path(certificate).read_text() + Path(key).read_text())
        self.instances, self.haproxy = [], None
        try:
            for disable_file in self.disable_files:
                self.instances.append(self._start_instance(database_url, disable_file))
            self.haproxy = HAProxy(lambda bind: self._configuration(bind, str(pem)))
            self.url = f"https://{self.server_name}:{self.haproxy.port}"
            self.haproxy.wait_until_serving(f"{self.url}/healthz", verify=self.ca)
        except BaseException:
            self.stop()
            raise

    def _start_instance(self, database_url, disable_file):
        return start_service(
            database_url,
            TRUSTED_PROXIES="1",
            ALLOWED_HOSTS=self.server_name,
            HEALTHCHECK_DISABLE_BY_FILE=str(disable_file),
            # Every answer the app logs (failures) with its remote_addr.
            LOG_LEVEL="INFO",
        )

    def _configuration(self, bind, pem):
        return HAProxyConfig(
            bind=bind,
            certificate=pem,
            server_name=self.server_name,
            servers={
                f"instance-{number}": f"127.0.0.1:{instance.port}"
                for number, instance in enumerate(self.instances, start=1)
            },
            metrics_allow=["127.0.0.1"],
            log="stderr format raw local0",
        ).render()

    def get(self, path, *, source=None, **options):
        """GET `path` through haproxy, from the loopback address `source` if given."""
        session = requests.Session()
        if source:
            session.mount("https://", _FromAddress(source))
        with session:
            return session.get(self.url + path, verify=self.ca, timeout=30, **options)

    def direct(self, instance, path, method="GET", **options):
        """`path` straight from `instance`, with the Host it allows."""
        headers = {"Host": self.server_name, **options.pop("headers", {})}
        return requests.request(method, instance.url + path, headers=headers, timeout=30, **options)

    def healthz_counts(self):
        """How many GET /healthz each instance has answered, from its own /metrics."""
        return [
            metric_total(self.direct(instance, "/metrics").text, REQUESTS_TOTAL, route="/healthz")
            for instance in self.instances
        ]

    def landed(self, count):
        """Where `count` GET /healthz through haproxy landed: each instance's share."""
        before = self.healthz_counts()
        for _ in range(count):
            assert self.get("/healthz").status_code == 200
        return _growth(before, self.healthz_counts())

    def stop(self):
        if self.haproxy:
            self.haproxy.stop()
        for instance in self.instances:
            instance.stop()


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one local address (any 127.x.y.z reaches 127.0.0.1 on loopback)."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


@pytest.fixture(scope="module")
def served(app, database_url, tls, tmp_path_factory):  # app: the database is migrated
    served = Served(database_url, tls, tmp_path_factory.mktemp("haproxy"))
    yield served
    served.stop()


def test_both_instances_serve_through_haproxy(served):
    assert served.landed(10) == [5, 5]


# {name}: the one name the instances allow.
@pytest.mark.parametrize(
    "spoofed",
    [
        {"X-Forwarded-Host": "{name}"},
        {"X-Forwarded-Host": "evil.example, {name}"},
        {"X_Forwarded_Host": "{name}"},
        {"X-Forwarded-Host": "{name}", "X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-Host": "{name}", "X-Forwarded-Proto": "http"},
    ],
    ids=["host", "host-list", "underscores", "with-for", "with-proto"],
)
def test_a_clients_forwarded_host_never_passes_allowed_hosts(served, spoofed):
    spoofed = {header: value.format(name=served.server_name) for header, value in spoofed.items()}
    response = served.get("/healthz", headers={"Host": "evil.example", **spoofed})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_the_service_sees_the_host_and_scheme_the_client_used(served):
    forged = {"X-Forwarded-Host": f"{served.server_name}:1", "X-Forwarded-Proto": "http"}
    response = served.get("/versions", headers=forged)
    assert response.status_code == 300
    links = [link["href"] for version in response.json()["versions"] for link in version["links"]]
    assert links == [f"{served.url}/v1.1/", f"{served.url}/v1/"]


def test_the_service_sees_the_clients_own_address(served):
    response = served.get(
        "/no-such-page", source=OUTSIDER, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status_code == 404
    request_id = response.headers["X-Openstack-Request-Id"]
    assert _logged_request(served.instances, request_id)["remote_addr"] == OUTSIDER


@pytest.mark.parametrize("path", ["/metrics", "/metrics/1", "/metrics/2", "/readyz", "/%6Detrics"])
def test_metrics_and_readiness_are_refused_outside_the_allow_list(served, path):
    assert served.get(path, source=OUTSIDER).status_code == 403
    assert served.get(path).status_code == 200


def test_metrics_n_answers_instance_ns_own_metrics(served):
    def not_found_counts():
        return [
            metric_total(served.get(f"/metrics/{number}").text, REQUESTS_TOTAL, status="404")
            for number in (1, 2)
        ]

    before = not_found_counts()
    # Straight to the second instance: only it counts these.
    for _ in range(3):
        served.direct(served.instances[1], "/no-such-page")
    assert _growth(before, not_found_counts()) == [0, 3]


def test_haproxy_logs_requests_without_their_query_strings(served):
    served.get("/logged-path?auth_token=SECRET-IN-THE-QUERY")
    log = _log_once_it_matches(served.haproxy.log_path, "GET /logged-path")
    assert "SECRET-IN-THE-QUERY" not in log


def test_the_disable_file_drains_an_instance_and_removing_it_brings_it_back(served):
    disable_file = served.disable_files[0]
    disable_file.touch()
    try:
        _wait_until_landing(served, lambda shares: shares[0] == 0, "instance 1 drained")
    finally:
        disable_file.unlink()
    _wait_until_landing(served, lambda shares: shares[0] > 0, "instance 1 back")


# Glance's default quota of 128 properties, and 2,100 short ones: about as
# many header lines as 64 KB hold (tune.http.maxhdr).
@pytest.mark.parametrize("properties", [128, 2100], ids=["128-properties", "2100-properties"])
def test_image_show_at_the_header_limit_answers_through_haproxy(
    served, run, make_token, monkeypatch, properties
):
    # More header lines than Python's http.client reads by default (100).
    monkeypatch.setattr(http.client, "_MAXHEADERS", 5000)
    image_id = "77777777-7777-4777-8777-777777777777"
    line = headers_filled_line(properties=properties, id=image_id)
    assert run("images", "import", "-", input=line + "\n").exit_code == 0
    headers = {"X-Auth-Token": make_token()}
    shown = requests.head(
        f"{served.url}/v1/images/{image_id}", headers=headers, verify=served.ca, timeout=30
    )
    direct = served.direct(served.instances[0], f"/v1/images/{image_id}", "HEAD", headers=headers)
    assert shown.status_code == 200

    # HAProxy sends every header name in lower case (HTTP compares them case-blind).
    def meta(response):
        lowered = {name.lower(): value for name, value in response.headers.items()}
        return {name: value for name, value in lowered.items() if name.startswith("x-image-meta-")}

    assert len(meta(shown)) == properties + 15 and meta(shown) == meta(direct)


def test_a_stopped_instance_costs_no_request(app, database_url, tls, tmp_path):
    served = Served(database_url, tls, tmp_path)
    try:
        served.instances[0].stop()
        # Before 3 failed checks take it out, about half the requests find it
        # gone; each is tried again on the other instance (a "+" retry count).
        for _ in range(10):
            assert served.get("/healthz").status_code == 200
        _log_once_it_matches(served.haproxy.log_path, r"/\+1 \d+/\d+ GET /healthz")
    finally:
        served.stop()


def _growth(before, after):
    """How much each instance's count grew."""
    return [late - early for early, late in zip(before, after, strict=True)]


def _wait_until_landing(served, wanted, description, requests_each_time=10):
    """Send requests through haproxy until where they land is `wanted` (fails at a deadline)."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not wanted(shares := served.landed(requests_each_time)):
        assert time.monotonic() < deadline, f"never {description}: the last shares {shares}"


def _logged_request(instances, request_id):
    """The JSON log line of the request `request_id`, from whichever instance served it."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for instance in instances:
            for line in instance.log_path.read_text(errors="replace").splitlines():
                if request_id in line and line.startswith("{"):
                    return json.loads(line)
        time.sleep(0.05)
    pytest.fail(f"no instance logged the request {request_id}")


def _log_once_it_matches(path, pattern):
    """The text of the log at `path` once `pattern` matches it (fails at a deadline).

    haproxy writes a request's line once it has answered it.
    """
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not re.search(pattern, found := path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{pattern!r} never matched {found!r}"
        time.sleep(0.05)
    return found
