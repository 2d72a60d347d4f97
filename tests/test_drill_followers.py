"""Drill: followers of one source on several hosts; one works, the others stand by.

Two `images sync-glance --follow` processes of the same source while Glance
changes: exactly one applies passes; killed, the other takes over within an
interval and the catalogue ends equal to Glance.
"""

import os
import signal
import subprocess
import time

import pytest

from deploy.commands import follow_command
from deploy.glance_schemas import load_schema
from deploy.processes import stop
from glance_database import GlanceDatabase
from helpers import ROOT
from mirroring import (
    assert_lists_like_glance_v1,
    change_glance_underneath,
    everything,
    load_reference,
    populate,
    wait_for_log,
    wait_until,
    with_reader,
)

pytestmark = pytest.mark.drill
INTERVAL = 1.0
# The takeover is due within one interval; the rest is a busy machine's slack.
TAKEOVER_SLACK_SECONDS = 10


def _start(mirror_app, glance_url, log):
    with log.open("w") as output:
        return subprocess.Popen(
            follow_command(interval=INTERVAL, overlap=5, reconcile_every=2),
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": mirror_app.config["SQLALCHEMY_DATABASE_URI"],
                "GLANCE_DATABASE_URL": with_reader(glance_url),
                # The drill purges in bulk, as an operator may: not what the guard is for.
                "MIRROR_DELETION_FLOOR": "1000",
            },
            stderr=output,
        )


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
    followers = [_start(mirror_app, glance_url, log) for log in logs]
    try:
        wait_until(
            lambda: all("standby:" in log.read_text() or _passes(log) for log in logs),
            "one follower active and one standing by",
            logs[0],
        )
        active = 0 if _passes(logs[0]) else 1
        standby = 1 - active
        change_glance_underneath(glance, marker, operations=150)
        _wait_until_mirrored(app, mirror_app, glance, logs[active], followers[active])
        assert _passes(logs[standby]) == [], "the standby applied passes too"

        followers[active].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        followers[active].wait()
        wait_for_log(logs[standby], followers[standby], "active: following source 'glance'")
        takeover = time.monotonic() - killed_at
        change_glance_underneath(glance, marker, operations=150)
        _wait_until_mirrored(app, mirror_app, glance, logs[standby], followers[standby])
    finally:
        for follower in followers:
            stop(follower)
    assert takeover < INTERVAL + TAKEOVER_SLACK_SECONDS
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)
    print(f"followers drill: the standby took over {takeover:.1f} s after the active one died")


def _wait_until_mirrored(app, mirror_app, glance, log, follower):
    load_reference(app, glance)
    expected = everything(app)
    wait_until(lambda: everything(mirror_app) == expected, "the mirror to catch up", log, follower)
