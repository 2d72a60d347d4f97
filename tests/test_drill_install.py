"""Drill: the wheel installs into a new virtualenv outside the checkout and runs the service
from one configuration file, as an operator installs it."""

import subprocess
import sys
import zipfile

import pytest
import requests

from app.config.sample import SAMPLE
from deploy.gunicorn_process import Gunicorn
from helpers import ROOT, import_line

pytestmark = pytest.mark.drill


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


def test_the_installed_service_runs_from_its_configuration_file(installed, new_database):
    command, folder = installed
    config = folder / "image-catalogue.conf"
    config.write_text(f"[database]\nconnection = {new_database()}\n")
    environment = {"IMAGE_CATALOGUE_CONFIG": str(config)}

    def run(*arguments, stdin=None):
        result = subprocess.run(
            [str(command), *arguments],
            cwd=folder,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **environment},
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run("check-config").strip() == f"{config}: OK"
    run("db", "upgrade")
    assert "1 inserted" in run("images", "import", "-", stdin=import_line(name="installed") + "\n")
    token = run("tokens", "issue", "--project", "p1").strip()
    assert run("shipped-file", "image-catalogue.conf.sample") == SAMPLE.read_text()

    server = Gunicorn({**environment, "WEB_CONCURRENCY": "1"}, root=folder, program=[str(command)])
    try:
        server.wait_until_serving()
        response = requests.get(
            server.url + "/v1/images/detail", headers={"X-Auth-Token": token}, timeout=30
        )
    finally:
        server.stop()
    assert [image["name"] for image in response.json()["images"]] == ["installed"]
