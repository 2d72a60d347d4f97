"""Drills: reloads and rolling restarts behind nginx lose no request and run the new code."""

import shutil
import signal
import time

import psutil
import pytest
import requests

from deploy.gunicorn_process import Gunicorn
from deploy.nginx_process import Nginx
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import DETAIL, REQUESTS_TOTAL, ROOT, SteadyClient, scraped_total
from servers import start_service

pytestmark = pytest.mark.drill


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
    shutil.copytree(ROOT / "app", checkout / "app", ignore=shutil.ignore_patterns("__pycache__"))
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


def test_nginx_never_sends_an_answered_request_to_a_second_instance(app, database_url, make_token):
    token = make_token()
    # A statement timeout nothing can meet: every listing is answered 503.
    instances = [start_service(database_url, DB_STATEMENT_TIMEOUT_MS="1") for _ in range(2)]
    nginx = Nginx([instance.port for instance in instances])
    try:
        nginx.wait_until_serving()
        response = requests.get(nginx.url + DETAIL, headers={"X-Auth-Token": token}, timeout=30)
        answered = sum(
            scraped_total(f"{instance.url}/metrics", REQUESTS_TOTAL, status="503")
            for instance in instances
        )
    finally:
        nginx.stop()
        for instance in instances:
            instance.stop()
    assert response.status_code == 503
    assert answered == 1
