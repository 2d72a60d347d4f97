"""Change numbers grow in commit order: a reader that saw change N never later finds one below N.

Checked against concurrent writers, with a checker that catches a plain
sequence breaking the rule, and against a writer killed mid-transaction.
"""

import random
import threading
import time
import uuid
from contextlib import closing

import psycopg2
import pytest

from deploy.processes import READY_DEADLINE_SECONDS
from helpers import BackgroundLoop

# One image per change, its `change` the number the writer took.
INSERT = (
    "INSERT INTO images (id, status, created_at, is_public, change)"
    " VALUES (%s, 'active', now(), true, {number})"
)
FUNCTION, SEQUENCE = "image_catalogue_change_number()", "nextval('plain_change_numbers')"


@pytest.fixture
def connect(app, database_url):
    opened = []

    def connect():
        connection = psycopg2.connect(database_url)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.close()


class Writer(BackgroundLoop):
    """Takes a number, waits a random moment, writes an image with it, commits; again."""

    def __init__(self, connection, number_from):
        super().__init__()
        self.connection, self.number_from = connection, number_from
        self.committed = 0

    def run(self):
        cursor = self.connection.cursor()
        while self.running:
            cursor.execute(f"SELECT {self.number_from}")
            (number,) = cursor.fetchone()
            cursor.execute("SELECT pg_sleep(%s)", (random.random() / 200,))
            cursor.execute(INSERT.format(number=number), (str(uuid.uuid4()),))
            self.connection.commit()
            self.committed += 1


def _violations(connection, writers, commits):
    """Numbers a read found committed below the highest an earlier read saw: the first ones
    found, or none once the writers committed `commits` times."""
    cursor = connection.cursor()
    seen, violations = set(), []
    connection.autocommit = True
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not violations and sum(writer.committed for writer in writers) < commits:
        assert time.monotonic() < deadline, "the writers stalled"
        cursor.execute("SELECT change FROM images WHERE change > 0")
        now = {change for (change,) in cursor.fetchall()}
        if seen:
            violations += sorted(change for change in now - seen if change < max(seen))
        seen = now
    return violations


def _race(connect, number_from, commits=400):
    """(violations, commits of each writer) of 4 writers taking numbers from `number_from`."""
    writers = [Writer(connect(), number_from) for _ in range(4)]
    for writer in writers:
        writer.start()
    try:
        return _violations(connect(), writers, commits), [writer.committed for writer in writers]
    finally:
        for writer in writers:
            writer.__exit__(None, None, None)


def test_concurrent_writers_commit_in_number_order(connect):
    violations, commits = _race(connect, FUNCTION)
    assert violations == []
    assert min(commits) > 0, commits  # every writer really raced the others


def test_the_checker_catches_a_plain_sequence_out_of_commit_order(connect):
    # The negative control: the same race with numbers from a sequence.
    with connect() as setup:
        setup.cursor().execute("CREATE SEQUENCE IF NOT EXISTS plain_change_numbers")
    violations, commits = _race(connect, SEQUENCE)
    assert violations != [], commits


def _waiting_on_a_lock(connection, pid):
    cursor = connection.cursor()
    cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    return cursor.fetchone()[0] == "Lock"


def test_a_second_writer_gets_its_number_only_once_the_first_ended(connect):
    first, second, watcher = connect(), connect(), connect()
    watcher.autocommit = True
    first.cursor().execute(f"SELECT {FUNCTION}")
    taken = {}

    def take():
        cursor = second.cursor()
        cursor.execute(f"SELECT {FUNCTION}")
        taken["number"] = cursor.fetchone()[0]

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not _waiting_on_a_lock(watcher, second.get_backend_pid()):
        assert time.monotonic() < deadline, "the second writer never waited"
        time.sleep(0.01)
    assert "number" not in taken
    first.rollback()
    thread.join(READY_DEADLINE_SECONDS)
    second.rollback()
    assert "number" in taken


def test_a_writer_killed_mid_transaction_leaves_no_number_behind(app, connect, client, make_token):
    token = make_token("p1")
    before = client.get("/v1/images/changes", headers={"X-Auth-Token": token}).get_json()
    doomed, killer = connect(), connect()
    killer.autocommit = True
    cursor = doomed.cursor()
    cursor.execute(f"SELECT {FUNCTION}")
    (lost,) = cursor.fetchone()
    cursor.execute(INSERT.format(number=lost), (str(uuid.uuid4()),))
    killer.cursor().execute("SELECT pg_terminate_backend(%s)", (doomed.get_backend_pid(),))
    with closing(connect()) as writer:
        cursor = writer.cursor()
        cursor.execute(f"SELECT {FUNCTION}")
        assert cursor.fetchone()[0] == lost  # taken again: no gap a poller could skip
        image = str(uuid.uuid4())
        cursor.execute(INSERT.format(number=lost), (image,))
        writer.commit()
    after = client.get(
        "/v1/images/changes",
        query_string={"since": before["cursor"]},
        headers={"X-Auth-Token": token},
    ).get_json()
    assert [entry["id"] for entry in after["changes"]] == [image]
