"""Drills with the shipped nginx site: size limits, HTTPS only for its name, /metrics allow-list."""

import pytest
import requests

from deploy.nginx_process import Nginx
from helpers import DETAIL, REQUESTS_TOTAL, scraped_total
from servers import start_service

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
            scraped_total(f"{nginx.url}/metrics/{number}", REQUESTS_TOTAL, status="404")
            for number in (1, 2)
        ]
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
    assert counted == [0, 3]
