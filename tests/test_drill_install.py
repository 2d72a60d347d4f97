"""Drill: the wheel installs into a new virtualenv outside the checkout and runs the service
from one configuration file, as an operator installs it."""

import shutil
import subprocess
import sys
import zipfile
from contextlib import closing

import psycopg2
import pytest
import requests
from alembic.script import ScriptDirectory

from app.config.sample import SAMPLE
from deploy.gunicorn_process import Gunicorn
from helpers import ROOT, import_line

pytestmark = pytest.mark.drill

# Written by an app/ package that is not the installed one, when something imports it.
_IMPORTED = "imported-from-here"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(the image-catalogue command of a new virtualenv with the wheel, a folder to run it in)."""
    folder = tmp_path_factory.mktemp("installed")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")], check=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    return venv / "bin" / "image-catalogue", folder


@pytest.fixture
def environment(tmp_path, new_database):
    """The environment naming a configuration file whose database is new and empty."""
    config = tmp_path / "image-catalogue.conf"
    config.write_text(f"[database]\nconnection = {new_database()}\n")
    return {"IMAGE_CATALOGUE_CONFIG": str(config)}


def _run(program, *arguments, environment, cwd, stdin=None):
    """Run a program of the installed virtualenv as a shell would, and return its output."""
    result = subprocess.run(
        [str(program), *arguments],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **environment},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_wheel_holds_the_service_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "app",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for shipped in (
        "app/config/image-catalogue.conf.sample",
        "app/migrations/alembic.ini",
        "app/migrations/env.py",
        "app/serving/gunicorn_conf.py",
        "app/serving/templates/nginx-site.conf.in",
        "app/serving/templates/haproxy.cfg.in",
        "app/serving/systemd/image-catalogue@.service",
    ):
        assert shipped in names
    migrations = {path.name for path in (ROOT / "migrations" / "versions").glob("*.py")}
    assert {name.rsplit("/", 1)[1] for name in names if "/versions/" in name} == migrations


def test_the_installed_service_runs_from_its_configuration_file(installed, environment):
    command, folder = installed

    def run(*arguments, stdin=None):
        return _run(command, *arguments, environment=environment, cwd=folder, stdin=stdin)

    config = environment["IMAGE_CATALOGUE_CONFIG"]
    assert run("check-config").strip() == f"{config}: OK"
    run("db", "upgrade")
    assert "1 inserted" in run("images", "import", "-", stdin=import_line(name="installed") + "\n")
    token = run("tokens", "issue", "--project", "p1").strip()
    assert run("shipped-file", "image-catalogue.conf.sample") == SAMPLE.read_text()
    assert _served_names(command, environment, token, root=folder) == ["installed"]


@pytest.fixture(scope="module")
def dependencies_only(tmp_path_factory):
    """The bin folder of a new virtualenv with requirements.lock installed, not the package."""
    venv = tmp_path_factory.mktemp("dependencies") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")], check=True)
    return venv / "bin"


def test_a_clone_migrates_with_flask_db_upgrade(dependencies_only, tmp_path, new_database):
    # The layout the project started from: the dependencies installed, the
    # checkout run in place.
    clone = _clone(tmp_path / "clone")
    database = new_database()
    flask = dependencies_only / "flask"
    _run(flask, "--app", "wsgi", "db", "upgrade", environment={"DATABASE_URL": database}, cwd=clone)
    with closing(psycopg2.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT version_num FROM alembic_version")
        applied = {version for (version,) in cursor}
    assert applied == set(ScriptDirectory(str(ROOT / "migrations")).get_heads())


@pytest.mark.parametrize("kind", ["a clone", "an unrelated app/"])
def test_the_installed_command_serves_the_installed_package_from_any_folder(
    installed, environment, tmp_path, kind
):
    command, folder = installed
    here = _clone(tmp_path / "clone") if kind == "a clone" else tmp_path / "elsewhere"
    _mark_imports(here / "app" / "__init__.py")
    _run(command, "db", "upgrade", environment=environment, cwd=folder)
    stdin = import_line(name="installed") + "\n"
    _run(command, "images", "import", "-", environment=environment, cwd=folder, stdin=stdin)
    token = _run(command, "tokens", "issue", "--project", "p1", environment=environment, cwd=folder)
    assert _served_names(command, environment, token.strip(), root=here) == ["installed"]
    assert not (here / _IMPORTED).exists()


def _clone(folder):
    """The project's files as a clone holds them: no virtualenv, caches or builds."""
    ignored = (".git", ".venv", "__pycache__", ".*_cache", "dist", "build", "*.egg-info")
    return shutil.copytree(ROOT, folder, ignore=shutil.ignore_patterns(*ignored))


def _mark_imports(init):
    """Make the package of `init` (a new one if missing) leave a file beside it when imported."""
    init.parent.mkdir(parents=True, exist_ok=True)
    marker = f"__import__('pathlib').Path(__file__).parent.with_name({_IMPORTED!r}).touch()\n"
    init.write_text(marker + (init.read_text() if init.exists() else ""))


def _served_names(command, environment, token, *, root):
    """The names the installed command's gunicorn lists, started from `root`."""
    server = Gunicorn({**environment, "WEB_CONCURRENCY": "1"}, root=root, program=[str(command)])
    try:
        server.wait_until_serving()
        response = requests.get(
            server.url + "/v1/images/detail", headers={"X-Auth-Token": token}, timeout=30
        )
    finally:
        server.stop()
    return [image["name"] for image in response.json()["images"]]
