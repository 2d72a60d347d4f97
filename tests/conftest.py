import datetime as dt
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import flask_migrate
import psycopg2
import pytest
import sqlalchemy as sa

from app import create_app
from app.config import load
from app.config.options import KEYSTONE_PREFIX, LIBRARY_VARIABLES, SETTINGS
from app.db import db, embedded
from app.models import Image, ImageMember, ImageProperty
from app.tokens import issue_token
from deploy.glance_schemas import load_schema
from deploy.openstack_cloud import start_cloud
from helpers import BASE_TIME, ROOT
from servers import start_service, tls_files


@pytest.fixture(scope="session")
def database_url():
    """A throwaway database: on TEST_DATABASE_URL's server, else an embedded one."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url:
        yield from _throwaway_database(server_url)
        return
    parent = tempfile.mkdtemp(prefix="image-catalogue-test-", dir="/var/tmp")
    server = embedded.start(Path(parent) / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _throwaway_database(server_url, name=None):
    name = name or f"image_catalogue_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def empty_database(new_database):
    """A new, empty database on the test server, dropped afterwards."""
    return new_database()


@pytest.fixture(scope="module")
def module_database(database_url):
    """A new, empty database for one test module, dropped after it."""
    databases = _throwaway_database(database_url)
    yield next(databases)
    next(databases, None)


@pytest.fixture
def new_database(database_url):
    """Make new, empty databases on the test server (optionally named); dropped afterwards."""
    made = []

    def make(name=None):
        databases = _throwaway_database(database_url, name)
        made.append(databases)
        return next(databases)

    yield make
    for databases in made:
        next(databases, None)


@pytest.fixture(scope="session")
def make_app(database_url):
    """Build an app on the test database, configured as an operator would: by variables.

    make_app(TOKEN_CACHE_SECONDS=0, ALLOWED_HOSTS=["a", "b"]) sets what the
    environment variables of those names set (app/config/options.py); a list
    is comma-separated, None unsets.
    """
    apps = []
    known = {setting.variable for setting in SETTINGS} | set(LIBRARY_VARIABLES)

    def make(**variables):
        variables = {"DATABASE_URL": database_url, **variables}
        for name in variables:
            assert name in known or name.startswith(KEYSTONE_PREFIX), f"no variable {name}"
        environ = {
            name: ",".join(value) if isinstance(value, list) else str(value)
            for name, value in variables.items()
            if value is not None
        }
        app = create_app(load(environ=environ))
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def app(make_app):
    app = make_app()
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.fixture
def mirror_app(make_app, new_database):
    """An app on a migrated catalogue database of its own (the Glance mirror's target)."""
    app = make_app(DATABASE_URL=new_database())
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.fixture
def glance_url(new_database, request):
    """A Glance database (Glance's newest schema, or the one a test parametrizes)."""
    url = new_database()
    load_schema(url, getattr(request, "param", "postgresql-33.0.0.sql"))
    return url


@pytest.fixture(autouse=True)
def clean_tables(request):
    yield
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
        with app.app_context():
            db.session.execute(
                sa.text(
                    "TRUNCATE images, image_properties, image_members, image_departures,"
                    " api_tokens, catalogue_loads CASCADE"
                )
            )
            db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_image(app):
    """Insert one image; unspecified fields get unique, listable defaults."""
    sequence = itertools.count()

    def make(**fields):
        number = next(sequence)
        record = {
            "id": uuid.uuid4(),
            "name": f"image-{number:04d}",
            "status": "active",
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 1000 + number,
            "created_at": BASE_TIME + dt.timedelta(minutes=number),
            "updated_at": BASE_TIME + dt.timedelta(minutes=number, seconds=30),
            "is_public": True,
            "owner": "owner-project",
            **fields,
        }
        properties = record.pop("properties", {})
        members = record.pop("members", [])
        with app.app_context():
            db.session.execute(sa.insert(Image), [record])
            if properties:
                db.session.execute(
                    sa.insert(ImageProperty),
                    [
                        {"image_id": record["id"], "name": k, "value": v}
                        for k, v in properties.items()
                    ],
                )
            if members:
                db.session.execute(
                    sa.insert(ImageMember),
                    [{"image_id": record["id"], "member": member} for member in members],
                )
            db.session.commit()
        return str(record["id"])

    return make


@pytest.fixture
def make_token(app):
    def make(project="project-a", roles=("member",), ttl=3600):
        with app.app_context():
            return issue_token(db.session, project_id=project, roles=roles, ttl_seconds=ttl)

    return make


@pytest.fixture
def run(app):
    """Run a command (`images ...`, `tokens ...`) in-process; return click's Result."""
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)

    return invoke


@pytest.fixture
def list_images(client, make_token):
    """GET a listing path as a member of project-a (or with the given token)."""

    def get(query="", path="/v1.1/images/detail", token=None):
        token = token or make_token()
        return client.get(f"{path}?{query}" if query else path, headers={"X-Auth-Token": token})

    return get


@pytest.fixture(scope="session")
def live_server(app, database_url):
    """The service under gunicorn with the shipped config, on a loopback port."""
    server = start_service(database_url)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server_name, certificate, key, CA) for the production nginx site."""
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The wheel `make dist` builds (from the source distribution, so that is complete too)."""
    outdir = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = outdir.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def openstack(database_url, tmp_path_factory, pytestconfig):
    """Keystone 30 and Glance 33 on loopback, for drills (deploy/openstack_cloud.py).

    Their databases are throwaway ones on the test server; the first run in a
    checkout installs their virtualenvs (.openstack-venvs/), showing progress.
    """
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    terminal = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def report(line):
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"[openstack] {line}")

    keystone_databases = _throwaway_database(database_url)
    glance_databases = _throwaway_database(database_url)
    cloud = start_cloud(
        tmp_path_factory.mktemp("openstack"),
        keystone_database_url=next(keystone_databases),
        glance_database_url=next(glance_databases),
        report=report,
    )
    yield cloud
    cloud.stop()
    next(glance_databases, None)
    next(keystone_databases, None)
