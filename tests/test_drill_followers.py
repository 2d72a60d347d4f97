"""Drill: followers of one source on several hosts; one works, the others stand by.

Two `images sync-glance --follow` processes of the same source while Glance
changes: exactly one applies passes; killed, the other takes over within an
interval and the catalogue ends equal to Glance.
"""

import signal
import time

import pytest

from deploy.glance_schemas import load_schema
from deploy.processes import stop
from glance_database import GlanceDatabase
from mirroring import (
    assert_lists_like_glance_v1,
    change_glance_underneath,
    populate,
    start_follower,
    wait_for_log,
    wait_until,
    wait_until_mirrored,
    with_reader,
)

pytestmark = pytest.mark.drill
INTERVAL = 1.0
# The takeover is due within one interval; the rest is a busy machine's slack.
TAKEOVER_SLACK_SECONDS = 10


def _passes(log):
    return [
        line for line in log.read_text().splitlines() if "full sync:" in line or '"pass: ' in line
    ]


def test_one_follower_works_the_other_takes_over_when_it_dies(
    app, mirror_app, new_database, tmp_path
):
    glance_url = new_database()
    load_schema(glance_url, "postgresql-33.0.0.sql")
    glance = GlanceDatabase(glance_url)
    marker = populate(glance)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    followers = [
        start_follower(
            mirror_app, with_reader(glance_url), log, interval=INTERVAL, reconcile_every=2
        )
        for log in logs
    ]
    try:
        wait_until(
            lambda: all("standby:" in log.read_text() or _passes(log) for log in logs),
            "one follower active and one standing by",
            logs[0],
        )
        active = 0 if _passes(logs[0]) else 1
        standby = 1 - active
        change_glance_underneath(glance, marker, operations=150)
        wait_until_mirrored(app, mirror_app, glance, logs[active], followers[active])
        assert _passes(logs[standby]) == [], "the standby applied passes too"

        followers[active].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        followers[active].wait()
        wait_for_log(logs[standby], followers[standby], "active: following source 'glance'")
        takeover = time.monotonic() - killed_at
        change_glance_underneath(glance, marker, operations=150)
        wait_until_mirrored(app, mirror_app, glance, logs[standby], followers[standby])
    finally:
        for follower in followers:
            stop(follower)
    assert takeover < INTERVAL + TAKEOVER_SLACK_SECONDS
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)
    print(f"followers drill: the standby took over {takeover:.1f} s after the active one died")
