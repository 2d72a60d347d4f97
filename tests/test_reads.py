"""The read path (app/db/reads.py): retry on a dead connection, replicas, fallback, readiness."""

import psycopg2
import pytest

from app.db import status
from app.db.reads import replica_order
from deploy.processes import free_port
from helpers import DETAIL, image_ids, served_total
from tcp import SilentThenForwarding


def test_a_pooled_connection_found_dead_is_replaced_and_the_read_retried(
    make_app, make_image, make_token, database_url
):
    client = make_app().test_client()
    image, headers = make_image(), {"X-Auth-Token": make_token()}
    assert image_ids(client.get(DETAIL, headers=headers)) == [image]
    # Every connection this app pooled dies, as when PostgreSQL restarts.
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    killer.cursor().execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        " AND state = 'idle' AND query NOT LIKE '%alembic%'"
    )
    killer.close()
    assert image_ids(client.get(DETAIL, headers=headers)) == [image]


def test_reads_go_to_a_replica_and_fall_back_to_the_primary_when_it_is_down(
    make_app, make_image, make_token, database_url
):
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    client = make_app(
        DATABASE_REPLICA_URLS=[database_url, dead], DB_CONNECT_TIMEOUT=1
    ).test_client()
    image, token = make_image(), make_token()
    # The counters belong to the process, which other tests' apps share.
    before = _counts(client)
    for _ in range(3):
        assert image_ids(client.get(DETAIL, headers={"X-Auth-Token": token})) == [image]
    counted = {name: value - before[name] for name, value in _counts(client).items()}
    # The dead replica was tried at most once, then left out of rotation.
    assert counted["replica-2 down"] <= 1
    assert counted["replica-2"] == 0
    assert counted["replica-1"] + counted["primary"] >= 4  # three listings and a token


def _counts(client):
    counts = {
        name: served_total(client, "image_catalogue_db_reads_total", target=name)
        for name in ("primary", "replica-1", "replica-2")
    }
    counts["replica-2 down"] = served_total(
        client, "image_catalogue_db_read_fallbacks_total", target="replica-2", reason="down"
    )
    return counts


@pytest.mark.parametrize("affinity", ["a", "b", "token-digest"])
def test_each_caller_keeps_its_order_of_replicas_and_losing_one_moves_only_its_callers(affinity):
    everyone = replica_order(affinity, ["replica-1", "replica-2", "replica-3"])
    assert everyone == replica_order(affinity, ["replica-3", "replica-1", "replica-2"])
    without_third = [name for name in everyone if name != "replica-3"]
    assert replica_order(affinity, ["replica-1", "replica-2"]) == without_third


def test_callers_are_spread_over_the_replicas():
    first_choices = {replica_order(str(n), ["r1", "r2"])[0] for n in range(50)}
    assert first_choices == {"r1", "r2"}


def test_readyz_reports_every_database_and_its_lag(make_app, database_url):
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    client = make_app(DATABASE_REPLICA_URLS=[database_url, dead], DB_CONNECT_TIMEOUT=1)
    body = client.test_client().get("/readyz").get_json()
    assert body["databases"]["primary"] == {"status": "ok", "lag_seconds": 0.0}
    assert body["databases"]["replica-1"] == {"status": "ok", "lag_seconds": 0.0}
    assert body["databases"]["replica-2"]["status"] == "unavailable"


def test_readyz_shares_one_probe_and_asks_a_silent_replica_once_per_retry_time(make_app):
    with SilentThenForwarding() as silent:
        app = make_app(
            DATABASE_REPLICA_URLS=[f"postgresql://reader@127.0.0.1:{silent.port}/catalogue"],
            DB_CONNECT_TIMEOUT=1,
            REPLICA_RETRY_SECONDS=600,
        )
        answers = [app.test_client().get("/readyz") for _ in range(30)]
        with app.app_context():
            later = [status() for _ in range(3)]
        asked = len(silent.sockets)
    assert {answer.status_code for answer in answers} == {200}
    assert answers[-1].get_json()["databases"]["replica-1"] == {"status": "unavailable"}
    assert [probe["replica-1"]["status"] for probe in later] == ["unavailable"] * 3
    # The first probe found it silent; later ones leave it out until its retry time.
    assert asked == 1
