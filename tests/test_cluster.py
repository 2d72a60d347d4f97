"""Drills on the scaled-out topology (deploy/cluster.py): replicas, PgBouncer, two instances, nginx.

A client pages with markers and polls changes-since the whole time, while a
writer moves a "clock" image forward on the primary; every answer must be a
200, and the clock a client sees must never go back.
"""

import json
import os
import threading
import time
from itertools import groupby

import pytest
import requests

from app import create_app
from app.config import load
from app.db.reads import replica_order
from app.tokens import hash_token
from deploy.cluster import Cluster
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import DETAIL, BackgroundLoop, scraped_total

pytestmark = pytest.mark.drill
CLOCK = "c10c0000-0000-4000-8000-000000000000"
MAX_LAG_SECONDS = 2.0
# Catch-up after the primary returns: a replica retries its connection every
# second (wal_retrieve_retry_interval), then replays; the rest is slack.
CATCH_UP_SLACK_SECONDS = 10


def _clock_line():
    return json.dumps(
        {
            "id": CLOCK,
            "name": "clock",
            "status": "active",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "is_public": True,
            "properties": {"tick": "0"},
        }
    )


@pytest.fixture
def cluster():
    with Cluster(max_lag_seconds=MAX_LAG_SECONDS) as cluster:
        cluster.catalogue("images", "generate", "--count", "200", "--projects", "3")
        cluster.catalogue("images", "import", "-", input=_clock_line() + "\n")
        cluster.token = cluster.catalogue("tokens", "issue", "--project", "project-0001").stdout
        cluster.token = cluster.token.strip()
        cluster.wait_for_replicas()
        yield cluster


class Writer(BackgroundLoop):
    """Moves the clock image forward on the primary, back to back, until stopped."""

    def __init__(self, cluster):
        super().__init__()
        self.cluster, self.tick = cluster, 0

    def run(self):
        while self.running:
            try:
                self.cluster.primary.sql(
                    "UPDATE images SET updated_at = clock_timestamp() WHERE id = %s;"
                    "UPDATE image_properties SET value = %s WHERE image_id = %s AND name = 'tick'",
                    (CLOCK, str(self.tick + 1), CLOCK),
                )
                self.tick += 1
            except Exception:  # noqa: BLE001 - the primary may be down on purpose
                time.sleep(0.05)


class Client(BackgroundLoop):
    """Pages with markers and polls changes-since through nginx until stopped.

    Records every answer's status, and the clock each changes-since poll showed.
    """

    def __init__(self, cluster):
        super().__init__()
        self.url, self.headers = cluster.nginx.url + DETAIL, {"X-Auth-Token": cluster.token}
        self.statuses, self.clocks = [], []
        self.changed = threading.Condition()

    def run(self):
        marker = None
        while self.running:
            page = self._get({"limit": 5, **({"marker": marker} if marker else {})})
            images = page["images"] if page else []
            marker = images[-1]["id"] if len(images) == 5 else None
            poll = self._get({"changes-since": "2000-01-01", "sort_key": "updated_at", "limit": 1})
            if poll and poll["images"] and poll["images"][0]["id"] == CLOCK:
                with self.changed:
                    self.clocks.append(int(poll["images"][0]["properties"]["tick"]))

    def _get(self, params):
        try:
            response = requests.get(self.url, params=params, headers=self.headers, timeout=30)
            status = response.status_code
        except requests.RequestException as error:
            response, status = None, type(error).__name__
        with self.changed:
            self.statuses.append(status)
            self.changed.notify_all()
        return response.json() if status == 200 else None

    def wait_for_more(self, count):
        with self.changed:
            wanted = len(self.statuses) + count
            if not self.changed.wait_for(
                lambda: len(self.statuses) >= wanted, READY_DEADLINE_SECONDS
            ):
                pytest.fail(f"the client stalled at {len(self.statuses)} answers")

    def failures(self):
        return [status for status in self.statuses if status != 200]

    def went_back(self):
        pairs = zip(self.clocks, self.clocks[1:], strict=False)
        return [(before, after) for before, after in pairs if after < before]

    def summary(self):
        runs = [(status, len(list(group))) for status, group in groupby(self.statuses)]
        return f"{len(self.statuses)} requests, {len(self.failures())} failed; {runs[:10]}"


def _reads(cluster, target, reason=None):
    """A counter summed over both instances: reads served by `target`, or its fallbacks."""
    if reason:
        metric, labels = "image_catalogue_db_read_fallbacks_total", {"reason": reason}
    else:
        metric, labels = "image_catalogue_db_reads_total", {}
    return sum(
        scraped_total(f"{instance.url}/metrics", metric, target=target, **labels)
        for instance in cluster.instances
    )


def _wait_until(condition, what):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        time.sleep(0.1)


def _preferred_replica(cluster):
    names = replica_order(hash_token(cluster.token), [replica.name for replica in cluster.replicas])
    return next(replica for replica in cluster.replicas if replica.name == names[0])


def test_killing_a_replica_fails_no_request_and_it_rejoins(cluster):
    victim = _preferred_replica(cluster)
    with Writer(cluster), Client(cluster) as client:
        client.wait_for_more(30)
        victim.kill()
        client.wait_for_more(60)
        victim.start()
        served = _reads(cluster, victim.name)
        _wait_until(lambda: _reads(cluster, victim.name) > served, f"{victim.name} to serve again")
        client.wait_for_more(30)
    assert client.failures() == [], client.summary()
    # docs/scaling.md: when its replica goes down, and again when it rejoins, a
    # client may see once a state up to the lag bound older than one it saw.
    assert len(client.went_back()) <= 2, client.went_back()
    print(f"replica kill drill: {client.summary()}; went back {client.went_back()}")


def test_with_the_primary_down_listings_answer_and_writes_fail_clearly(cluster):
    with Client(cluster) as client:
        client.wait_for_more(20)
        cluster.primary.stop()
        client.wait_for_more(40)
        refused = cluster.catalogue(
            "images", "import", "-", input=_clock_line() + "\n", check=False
        )
        cluster.primary.start()
        new_image = json.loads(_clock_line()) | {
            "id": "ae000000-0000-4000-8000-000000000001",
            "name": "written-after-the-outage",
        }
        # PgBouncer may still be waiting out its server_login_retry: the first
        # attempts can be refused, as clearly as during the outage.
        _wait_until(
            lambda: (
                cluster.catalogue(
                    "images", "import", "-", input=json.dumps(new_image) + "\n", check=False
                ).returncode
                == 0
            ),
            "a write to the returned primary",
        )
        written = time.monotonic()
        for replica in cluster.replicas:
            _wait_until(
                lambda replica=replica: replica.sql(
                    "SELECT count(*) FROM images WHERE name = 'written-after-the-outage'"
                )[0][0],
                f"the write on {replica.name}",
            )
        caught_up = time.monotonic() - written
        client.wait_for_more(20)
    assert client.failures() == [], client.summary()
    assert refused.returncode == 1
    assert "the catalogue's database could not be reached" in refused.stderr
    assert caught_up < MAX_LAG_SECONDS + CATCH_UP_SLACK_SECONDS
    print(f"primary outage drill: {client.summary()}; write on the replicas in {caught_up:.1f} s")


def test_a_replica_that_stops_replaying_leaves_rotation_and_nobody_sees_older_pages(cluster):
    paused = _preferred_replica(cluster)
    with Writer(cluster), Client(cluster) as client:
        client.wait_for_more(30)
        paused.sql("SELECT pg_wal_replay_pause()")
        _wait_until(
            lambda: _reads(cluster, paused.name, reason="lagging") > 0,
            f"{paused.name} to refuse reads for its lag",
        )
        client.wait_for_more(40)
        paused.sql("SELECT pg_wal_replay_resume()")
        client.wait_for_more(30)
    assert client.failures() == [], client.summary()
    assert client.went_back() == [], client.went_back()[:5]
    assert len(set(client.clocks)) > 10  # the clock did move under the client's eyes
    print(f"replay pause drill: {client.summary()}; clock seen {len(client.clocks)} times")


def test_restarting_a_gunicorn_instance_fails_no_request(cluster):
    with Client(cluster) as client:
        client.wait_for_more(20)
        old = cluster.instances[0]
        old.stop()
        cluster.instances[0] = cluster.start_instance(port=old.port)
        client.wait_for_more(30)
    assert client.failures() == [], client.summary()
    print(f"instance restart drill: {client.summary()}")


def test_a_write_returns_once_every_replica_has_replayed_it(cluster):
    """What a v1 write waits for before it answers (ReadRouter.wait_for_replicas)."""
    tick = "SELECT value FROM image_properties WHERE image_id = %s AND name = 'tick'"
    # Replicas that apply each commit a second late: a read just after a write misses it.
    for replica in cluster.replicas:
        replica.sql("ALTER SYSTEM SET recovery_min_apply_delay = '1s'", database="postgres")
        replica.sql("SELECT pg_reload_conf()", database="postgres")
    app = create_app(load(environ={**os.environ, **cluster.app_environment}))
    with app.app_context():
        for value in ("first", "second"):
            cluster.primary.sql(
                "UPDATE image_properties SET value = %s WHERE image_id = %s AND name = 'tick'",
                (value, CLOCK),
            )
            started = time.monotonic()
            app.extensions["reads"].wait_for_replicas()
            waited = time.monotonic() - started
            assert [replica.sql(tick, (CLOCK,)) for replica in cluster.replicas] == [
                [(value,)]
            ] * len(cluster.replicas)
    print(f"a write waited {waited:.2f} s for replicas applying commits 1 s late")
