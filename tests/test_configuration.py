"""One configuration file, overridden by the environment; the service refuses to start without
a database it was told to use, or with a setting it cannot use."""

import os
import re
import subprocess
import sys
import textwrap
from typing import NamedTuple

import pytest

from app import create_app
from app.config import ConfigurationError, load, settings
from app.config.lines import written_at
from app.config.sample import SAMPLE, generate
from app.serving import address
from deploy import CHECKOUT
from deploy.commands import run_catalogue
from deploy.gunicorn_process import start_gunicorn
from deploy.processes import ProcessFailed, stop
from servers import start_service

UNSET = "the catalogue's database is not set: set [database] connection (or DATABASE_URL)"


@pytest.mark.parametrize(
    "url, reason",
    [
        (None, re.escape(UNSET)),
        ("", re.escape(UNSET)),
        ("postgress://user:secret@db/catalogue", "must be a postgresql:// URL or 'embedded'"),
        ("mysql://user:secret@db/catalogue", "must be a postgresql:// URL or 'embedded'"),
        ("not a url", r"\[database\] connection: not a database URL"),
    ],
)
def test_app_refuses_to_start_without_a_postgresql_url(make_app, url, reason):
    with pytest.raises(ConfigurationError, match=reason) as refused:
        make_app(DATABASE_URL=url)
    assert "secret" not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_gunicorn_exits_at_once_with_the_reason_when_the_database_is_unset():
    with pytest.raises(ProcessFailed) as failed:
        start_service("")
    assert f"image-catalogue: {UNSET}" in str(failed.value)


def test_commands_exit_with_the_reason_in_one_line_when_the_database_url_is_wrong():
    result = _command({"DATABASE_URL": "mysql://user:secret@db/catalogue"}, "tokens", "list")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "image-catalogue: [database] connection must be a postgresql:// URL or 'embedded', "
        "not mysql://..."
    ]


def test_a_command_on_a_database_never_migrated_says_so_in_one_line(empty_database):
    result = _command({"DATABASE_URL": empty_database}, "tokens", "list")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith('Error: a table or column is missing (relation "api_tokens" does')
    assert line.endswith("lacks this release's schema: run image-catalogue db upgrade)")


def test_readyz_is_503_when_the_schema_was_never_migrated(make_app, empty_database):
    client = make_app(DATABASE_URL=empty_database).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "never migrated" in response.get_json()["error"]["message"]


def test_an_empty_variable_counts_as_unset():
    # An environment file with `HOST=` must not bind every interface.
    conf = load(environ={"HOST": "", "PORT": "", "KEYSTONE_AUTHTOKEN_WWW_AUTHENTICATE_URI": ""})
    assert (conf.bind_host, conf.bind_port) == ("127.0.0.1", 8080)
    assert conf.keystone_authtoken.www_authenticate_uri is None


def test_the_file_overrides_the_defaults_and_the_environment_overrides_the_file(tmp_path):
    path = _config(
        tmp_path,
        """
        [DEFAULT]
        allowed_hosts = images.example.com, images.example.net
        [limits]
        page_limit_default = 7
        page_limit_max = 70
        """,
    )
    values = settings(load(path, environ={"PAGE_LIMIT_MAX": "90"}))
    assert values["PAGE_LIMIT_DEFAULT"] == 7  # the file's
    assert values["PAGE_LIMIT_MAX"] == 90  # the environment's
    assert values["PROPERTY_FILTERS_MAX"] == 20  # the default
    assert values["TRUSTED_HOSTS"] == ["images.example.com", "images.example.net"]


def test_a_file_setting_changes_what_the_service_does(
    tmp_path, database_url, make_token, make_image
):
    for _ in range(3):
        make_image()
    path = _config(
        tmp_path, f"[database]\nconnection = {database_url}\n[limits]\npage_limit_default = 2"
    )
    client = create_app(load(path, environ={})).test_client()
    response = client.get("/v1.1/images/detail", headers={"X-Auth-Token": make_token()})
    assert len(response.get_json()["images"]) == 2


def test_a_database_url_in_the_file_is_taken_as_written(app, tmp_path, database_url):
    # libpq's query parameters (sslmode, sslrootcert, ...) pass whole; only $ is special: $$.
    separator = "&" if "?" in database_url else "?"
    written = f"{database_url}{separator}sslmode=disable&application_name=catalogue%20a$$b"
    path = _config(tmp_path, f"[database]\nconnection = {written}")
    url = settings(load(path, environ={}))["SQLALCHEMY_DATABASE_URI"]
    assert url == written.replace("$$", "$")
    result = _command({"IMAGE_CATALOGUE_CONFIG": path}, "tokens", "list")
    assert result.returncode == 0, result.stderr


def test_a_variable_is_taken_as_written_and_a_stray_dollar_in_the_file_is_named(tmp_path):
    url = "postgresql://catalogue:pa$sw0rd$$@db/catalogue"
    assert settings(load(environ={"DATABASE_URL": url}))["SQLALCHEMY_DATABASE_URI"] == url
    path = _config(tmp_path, "[database]\nconnection = postgresql://catalogue:pa$sw0rd@db/x")
    stray = rf"^{re.escape(path)}:2: \[database\] connection: a \$ there refers"
    with pytest.raises(ConfigurationError, match=stray):
        settings(load(path, environ={}))


def test_keystone_variables_fill_in_the_plugin_the_file_names(tmp_path):
    path = _config(tmp_path, "[keystone_authtoken]\nauth_type = password\nusername = catalogue")
    conf = load(path, environ={"KEYSTONE_AUTHTOKEN_PASSWORD": "from-a-secret"})
    assert conf.keystone_authtoken.password == "from-a-secret"
    assert conf.keystone_authtoken.username == "catalogue"


def test_help_and_version_need_no_configuration():
    result = _command({"DATABASE_URL": "mysql://not/ours"}, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "db", "images", "tokens", "check-config"):
        assert f"  {command} " in result.stdout


def test_an_ipv6_bind_address_is_bracketed():
    assert (address("::", 8080), address("127.0.0.1", 8080)) == ("[::]:8080", "127.0.0.1:8080")


def test_serve_names_a_wrong_bind_address_in_one_line(tmp_path):
    path = _config(tmp_path, "[DEFAULT]\nbind_port = http")
    result = _command({"IMAGE_CATALOGUE_CONFIG": path}, "serve")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"image-catalogue: {path}:2: [DEFAULT] bind_port: "
        "invalid literal for int() with base 10: 'http'"
    ]


def test_a_missing_or_broken_file_is_named_in_one_line(tmp_path):
    with pytest.raises(ConfigurationError, match="nowhere.conf") as missing:
        load(str(tmp_path / "nowhere.conf"), environ={})
    broken = _config(tmp_path, "[limits\npage_limit_default = 7")
    with pytest.raises(ConfigurationError, match="image-catalogue.conf") as unparsable:
        load(broken, environ={})
    for error in (missing, unparsable):
        assert "\n" not in str(error.value)


def test_a_wrong_value_names_its_option_and_where_it_came_from(tmp_path):
    with pytest.raises(
        ConfigurationError, match=r"PORT='http' is not valid for \[DEFAULT\] bind_port"
    ):
        load(environ={"PORT": "http"})
    path = _config(tmp_path, "[limits]\npage_limit_max = many")
    where = re.escape(f"{path}:2: [limits] page_limit_max: ")
    with pytest.raises(ConfigurationError, match=rf"^{where}.*many"):
        settings(load(path, environ={}))


def test_check_config_names_every_problem_and_exits_1(tmp_path):
    path = _config(
        tmp_path,
        """
        [DEFAULT]
        bind_port = 99999
        [limits]
        page_limits_max = 10
        [glance]
        connection = mysql://glance@db/glance
        """,
    )
    result = _command({"IMAGE_CATALOGUE_CONFIG": path}, "check-config")
    assert result.returncode == 1
    assert sorted(result.stderr.splitlines()) == [
        f"{path}:2: [DEFAULT] bind_port: Should be less than or equal to 65535",
        "image-catalogue.conf: [limits] has no option page_limits_max",
        "image-catalogue.conf: unknown section [glance]",
    ]


def test_the_line_named_is_the_one_oslo_config_uses(tmp_path):
    first, second = tmp_path / "first.conf", tmp_path / "second.conf"
    first.write_text("[database]\nconnection = a\n")
    second.write_text(
        "[DATABASE]\n# connection = old\nconnection = b\n  continued\nconnection: c\n[limits]\n"
    )
    found = written_at([str(first), str(second)], "database", "connection")
    assert found == (str(second), 5)


def test_check_config_says_ok_for_a_file_the_service_can_use(tmp_path, database_url):
    path = _config(tmp_path, f"[database]\nconnection = {database_url}")
    result = _command({"IMAGE_CATALOGUE_CONFIG": path}, "check-config")
    assert (result.returncode, result.stdout.strip()) == (0, f"{path}: OK"), result.stderr


def test_the_sample_configuration_is_the_generated_one():
    # `make sample-config` writes it; a new or changed option must show in it.
    assert SAMPLE.read_text() == generate(), "run: make sample-config"


def test_the_sample_configuration_loads_as_it_is():
    conf = load(str(SAMPLE), environ={})
    assert settings(conf)["PAGE_LIMIT_MAX"] == 1000


# serve refuses a configuration it cannot use before gunicorn starts a worker.
REFUSAL_SECONDS = 60
# A database nothing listens on: a command that got past the configuration fails at once.
NOWHERE = "postgresql://catalogue@127.0.0.1:9/catalogue"
KEYSTONE_SECTION = (
    "[keystone_authtoken]\nwww_authenticate_uri = http://keystone.invalid:5000\n"
    "auth_url = http://keystone.invalid:5000\nauth_type = password\nusername = catalogue\n"
)


class Leak(NamedTuple):
    text: str  # the configuration file
    secret: str
    option: str

    @property
    def line(self):
        return next(n for n, line in enumerate(self.text.splitlines(), 1) if self.secret in line)


LEAKS = {
    "$ in the database's password": Leak(
        "[database]\nconnection = postgresql://catalogue:Qv7$Wx2Kz9Lm@db.invalid/catalogue",
        "Qv7$Wx2Kz9Lm",
        "[database] connection",
    ),
    "@ in the database's password": Leak(
        "[database]\nconnection = postgresql://catalogue:Fd3@Gs8:Hk1Jl@db.invalid/catalogue",
        "Fd3@Gs8:Hk1Jl",
        "[database] connection",
    ),
    "a keystone password line without =": Leak(
        f"[database]\nconnection = {NOWHERE}\n{KEYSTONE_SECTION}password Hj4Rt8Yp2Nq6",
        "Hj4Rt8Yp2Nq6",
        "[keystone_authtoken] password",
    ),
    "$ in the keystone password": Leak(
        f"[DEFAULT]\nauth_strategy = keystone\n[database]\nconnection = {NOWHERE}\n"
        f"{KEYSTONE_SECTION}password = Zx5$Cv8Bn3Mq",
        "Zx5$Cv8Bn3Mq",
        "[keystone_authtoken] password",
    ),
    "$ in the mirror's password": Leak(
        f"[database]\nconnection = {NOWHERE}\n[glance_mirror]\n"
        "connection = mysql+pymysql://glance:Tg6$Yh9Uj2Ik@db.invalid/glance",
        "Tg6$Yh9Uj2Ik",
        "[glance_mirror] connection",
    ),
    "@ in the mirror's password": Leak(
        f"[database]\nconnection = {NOWHERE}\n[glance_mirror]\n"
        "connection = mysql+pymysql://glance:Er5@Ty8Ui2@db.invalid/glance",
        "Er5@Ty8Ui2",
        "[glance_mirror] connection",
    ),
    "$ in a replica's password": Leak(
        f"[database]\nconnection = {NOWHERE}\n[replicas]\nconnections = "
        "postgresql://replica:Pl4$Ok7Ij1Uh@replica-1.invalid/catalogue",
        "Pl4$Ok7Ij1Uh",
        "[replicas] connections",
    ),
    ", in a replica's password": Leak(
        f"[database]\nconnection = {NOWHERE}\n[replicas]\nconnections = "
        "postgresql://replica:Wq3x,Er6Ty9@replica-1.invalid/catalogue",
        "Wq3x,Er6Ty9",
        "[replicas] connections",
    ),
}
COMMANDS = [("check-config",), ("db", "upgrade"), ("images", "sync-glance"), ("tokens", "list")]


@pytest.mark.parametrize("leak", LEAKS.values(), ids=LEAKS.keys())
def test_no_command_shows_any_part_of_a_secret_it_cannot_use(tmp_path, leak):
    path = _config(tmp_path, leak.text)
    environment = {"IMAGE_CATALOGUE_CONFIG": path, "DATABASE_URL": "", "PORT": "9"}
    results = {" ".join(command): _command(environment, *command) for command in COMMANDS}
    results["serve"] = _serve(environment)
    probe = [sys.executable, "-m", "app.serving.probe"]
    results["probe"] = subprocess.run(
        probe, cwd=CHECKOUT, env=_clean(environment), capture_output=True, text=True
    )
    fragments = _fragments(leak.secret)
    where = f"{path}:{leak.line}: {leak.option}:"
    for name, result in results.items():
        assert result.returncode == 1, (name, result.stderr)
        for line in (result.stdout + result.stderr).splitlines():
            assert not fragments & _fragments(line), (name, line)
        assert name == "probe" or where in result.stderr, (name, result.stderr)


def test_check_config_names_without_quoting_a_line_whose_value_became_a_name(tmp_path):
    # No =, but a : in the password: oslo.config reads the name `password Bn7Vc`.
    path = _config(tmp_path, f"{KEYSTONE_SECTION}password Bn7Vc:Lk4Jh6Gf")
    result = _command({"IMAGE_CATALOGUE_CONFIG": path, "DATABASE_URL": NOWHERE}, "check-config")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:6: [keystone_authtoken] password: an option's name has no space; "
        "write `password = value` (the line is not shown: it may hold a password)"
    ]


@pytest.mark.parametrize(
    "text, mode, secrets",
    [
        ("[database]\nconnection = postgresql://u:Mn4Bv7@db/x", 0o644, "[database] connection"),
        ("[database]\nconnection = postgresql://u:Mn4Bv7@db/x", 0o640, None),
        (f"{KEYSTONE_SECTION}password = Mn4Bv7", 0o604, "[keystone_authtoken] password"),
        ("[limits]\npage_limit_max = 70", 0o644, None),
    ],
    ids=["0644 database URL", "0640 database URL", "0604 keystone password", "0644 no secret"],
)
def test_check_config_warns_when_others_may_read_a_file_holding_a_secret(
    tmp_path, text, mode, secrets
):
    path = _config(tmp_path, text)
    os.chmod(path, mode)
    result = _command({"IMAGE_CATALOGUE_CONFIG": path, "DATABASE_URL": NOWHERE}, "check-config")
    assert (result.returncode, result.stdout.strip()) == (0, f"{path}: OK"), result.stderr
    warning = (
        f"warning: {path} holds {secrets}, which every user may read (mode {mode:04o}): "
        f"chmod o-rwx {path}"
    )
    assert result.stderr.splitlines() == ([warning] if secrets else [])


def _config(folder, text):
    path = folder / "image-catalogue.conf"
    path.write_text(textwrap.dedent(text).strip() + "\n")
    return str(path)


def _command(environment, *arguments):
    return run_catalogue(*arguments, env=_clean(environment), capture_output=True)


def _clean(environment):
    # No configuration file or database of the test run leaks in.
    clean = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    return {**clean, **environment}


def _serve(environment):
    # serve as start_service starts it (gunicorn, its on_starting check), run to its end.
    with start_gunicorn(
        {**_clean(environment), "HOST": "127.0.0.1", "PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            stdout, stderr = server.communicate(timeout=REFUSAL_SECONDS)
        except subprocess.TimeoutExpired:
            stop(server)  # it serves: the test shows what it printed
            stdout, stderr = server.communicate()
    return subprocess.CompletedProcess(server.args, server.returncode, stdout, stderr)


def _fragments(text, size=4):
    return {text[start : start + size] for start in range(len(text) - size + 1)}
