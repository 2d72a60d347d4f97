"""The service refuses to start without a database it was told to use."""

import os
import subprocess
import sys

import pytest

from app.config import ConfigurationError
from deploy.commands import catalogue_command
from deploy.processes import ProcessFailed
from helpers import ROOT
from servers import start_service


@pytest.mark.parametrize(
    "url, reason",
    [
        (None, "DATABASE_URL is not set"),
        ("", "DATABASE_URL is not set"),
        ("postgress://user:secret@db/catalogue", "must be a postgresql:// URL or 'embedded'"),
        ("mysql://user:secret@db/catalogue", "must be a postgresql:// URL or 'embedded'"),
        ("not a url", "DATABASE_URL is not a URL"),
    ],
)
def test_app_refuses_to_start_without_a_postgresql_url(make_app, url, reason):
    with pytest.raises(ConfigurationError, match=reason) as refused:
        make_app(SQLALCHEMY_DATABASE_URI=url)
    assert "secret" not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_gunicorn_exits_at_once_with_the_reason_when_database_url_is_unset():
    with pytest.raises(ProcessFailed) as failed:
        start_service("")
    assert "image-catalogue: DATABASE_URL is not set" in str(failed.value)


def test_commands_exit_with_the_reason_in_one_line_when_database_url_is_wrong():
    environment = {**os.environ, "DATABASE_URL": "mysql://user:secret@db/catalogue"}
    result = subprocess.run(
        catalogue_command("tokens", "list"),
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "image-catalogue: DATABASE_URL must be a postgresql:// URL or 'embedded', "
        "not mysql://user:***@db/catalogue"
    ]


def test_readyz_is_503_when_the_schema_was_never_migrated(make_app, empty_database):
    client = make_app(SQLALCHEMY_DATABASE_URI=empty_database).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "never migrated" in response.get_json()["error"]["message"]


def test_an_empty_setting_counts_as_unset():
    # An environment file with `HOST=` must not bind every interface.
    environment = {**os.environ, "HOST": "", "PORT": "", "KEYSTONE_AUTHTOKEN_AUTH_URL": ""}
    script = (
        "import runpy; from app.config import Config; "
        "print(runpy.run_path('app/serving/gunicorn_conf.py')['bind'], Config.KEYSTONE_AUTHTOKEN)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["127.0.0.1:8080", "{}"]
