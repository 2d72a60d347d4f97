"""Drills with the shipped nginx site: size limits, HTTPS only for its name, the allow-list for
/metrics and /readyz, image-show's largest answer, /readyz floods."""

import contextlib
import http.client
import statistics
import time

import pytest
import requests

from deploy.nginx_process import Nginx
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import DETAIL, REQUESTS_TOTAL, SteadyClient, headers_filled_line, scraped_total
from servers import start_service
from tcp import SilentThenForwarding

pytestmark = pytest.mark.drill


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
        # nginx logs its own refusals (a request line too long to parse has no
        # method or path), never the query string; it writes the line after answering.
        nginx_log = _log_once_it_has(nginx.access_log, '"- -" 414', f'"GET {DETAIL}" 400')
    finally:
        nginx.stop()
    assert long_url.status_code == 414
    assert big_header.status_code in (400, 431)
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
        # /readyz names the databases (replica-1: unavailable): operators only.
        assert requests.get(f"{nginx.url}/readyz", timeout=30).status_code == 403
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
            scraped_total(f"{nginx.url}/metrics/{number}", REQUESTS_TOTAL, status="404")
            for number in (1, 2)
        ]
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
    assert counted == [0, 3]


def test_image_show_of_an_image_at_the_header_limit_answers_through_nginx(
    live_server, run, make_token, monkeypatch
):
    # 128 properties: more header lines than Python's http.client reads by default.
    monkeypatch.setattr(http.client, "_MAXHEADERS", 1000)
    image_id = "66666666-6666-4666-8666-666666666666"
    assert (
        run("images", "import", "-", input=headers_filled_line(id=image_id) + "\n").exit_code == 0
    )
    port = int(live_server.rsplit(":", 1)[1])
    nginx = Nginx([port])
    headers = {"X-Auth-Token": make_token()}
    try:
        nginx.wait_until_serving()
        through_nginx = requests.head(
            f"{nginx.url}/v1/images/{image_id}", headers=headers, timeout=30
        )
    finally:
        nginx.stop()
    direct = requests.head(f"{live_server}/v1/images/{image_id}", headers=headers, timeout=30)
    assert through_nginx.status_code == 200

    def meta(response):
        return {name: value for name, value in response.headers.items() if "Meta" in name}

    assert len(meta(through_nginx)) == 128 + 15 and meta(through_nginx) == meta(direct)


def test_a_readyz_flood_with_a_silent_replica_slows_neither_healthcheck_nor_listings(
    database_url, make_token
):
    token = make_token()
    listing = {"url": None, "headers": {"X-Auth-Token": token}, "timeout": 30}
    with SilentThenForwarding() as silent:
        service = start_service(
            database_url,
            DATABASE_REPLICA_URLS=f"postgresql://reader@127.0.0.1:{silent.port}/catalogue",
            DB_CONNECT_TIMEOUT="2",
        )
        nginx = Nginx([service.port])
        try:
            nginx.wait_until_serving()
            listing["url"] = nginx.url + DETAIL
            with contextlib.ExitStack() as flood:
                flooders = [
                    flood.enter_context(SteadyClient(f"{nginx.url}/readyz", token))
                    for _ in range(4)
                ]
                for flooder in flooders:
                    flooder.wait_for_more(10)
                checks = [_timed(f"{service.url}/healthcheck", timeout=30) for _ in range(20)]
                listings = [_timed(**listing) for _ in range(20)]
            readyz = [seconds for flooder in flooders for _, seconds in flooder.outcomes[10:]]
        finally:
            nginx.stop()
            service.stop()
    check_seconds, listing_seconds = [s for _, s in checks], [s for _, s in listings]
    print(
        f"readyz median {statistics.median(readyz):.3f} s; healthcheck max "
        f"{max(check_seconds):.3f} s; listings median {statistics.median(listing_seconds):.3f} "
        f"s, max {max(listing_seconds):.3f} s"
    )
    assert {status for status, _ in checks + listings} == {200}
    # A load balancer's check (HAProxy's: 2 s) never times out; a listing waits at
    # most one connect timeout for the silent replica, and most wait for none.
    assert max(check_seconds) < 1.0
    assert max(listing_seconds) < 2.0 + 1.0
    assert statistics.median(listing_seconds) < 0.5
    assert statistics.median(readyz) < 0.5


def _timed(url, **options):
    """(status, seconds) of a GET of `url`."""
    started = time.monotonic()
    status = requests.get(url, **options).status_code
    return status, time.monotonic() - started


def _log_once_it_has(path, *lines):
    """The text of the log at `path` once it holds every one of `lines` (fails at a deadline)."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not all(line in (text := path.read_text()) for line in lines):
        assert time.monotonic() < deadline, f"{lines} never all appeared in {text!r}"
        time.sleep(0.05)
    return text
