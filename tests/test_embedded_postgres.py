import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2

from app.db import embedded
from helpers import ROOT

OWNER = """
import sys, time
import psycopg2
from app.db import embedded
server = embedded.start(sys.argv[1])
connection = psycopg2.connect(server.get_uri())
connection.autocommit = True
connection.cursor().execute("CREATE TABLE kept (n integer); INSERT INTO kept VALUES (42)")
print(server.get_pid(), flush=True)
time.sleep(600)
"""


def test_server_of_a_killed_owner_is_stopped_and_restarted_with_its_data():
    parent = Path(tempfile.mkdtemp(prefix="image-catalogue-kill-", dir="/var/tmp"))
    pgdata = parent / "pgdata"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(pgdata)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        orphan_pid = int(owner.stdout.readline())
        owner.kill()
        owner.wait()
        owner.stdout.close()
        server = embedded.start(pgdata, cleanup_mode="delete")
        try:
            assert server.get_pid() != orphan_pid
            with psycopg2.connect(server.get_uri()) as connection:
                cursor = connection.cursor()
                cursor.execute("SELECT n FROM kept")
                assert cursor.fetchall() == [(42,)]
            connection.close()
        finally:
            server.cleanup()
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
        shutil.rmtree(parent, ignore_errors=True)
