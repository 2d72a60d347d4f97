"""deploy/ is tested like code: nginx -t, haproxy -c and systemd-analyze verify of what an
operator copies."""

import shutil
import subprocess
from pathlib import Path

import pytest

from app.serving.haproxy_config import HAProxyConfig
from app.serving.nginx_site import Site
from deploy.commands import run_catalogue
from deploy.nginx_process import nginx_command, nginx_prefix
from helpers import ROOT
from servers import tls_files

pytestmark = pytest.mark.drill  # needs nginx, haproxy, systemd-analyze (make drills installs them)
SYSTEMD = ROOT / "app" / "serving" / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
TIMERS = sorted(SYSTEMD.glob("*.timer"))
# Where the units expect the package's virtualenv; here, the checkout's.
INSTALLED_AT = "/opt/image-catalogue"


def _nginx_t(site):
    prefix = nginx_prefix()
    try:
        (prefix / "site.conf").write_text(site.render())
        return subprocess.run(nginx_command(prefix, "-t"), capture_output=True, text=True)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_production_nginx_site_passes_nginx_t(tmp_path):
    server_name, certificate, key, _ = tls_files(tmp_path, "images.example.com")
    site = Site(
        upstreams=["127.0.0.1:8080", "127.0.0.1:8081"],
        server_name=server_name,
        certificate=certificate,
        certificate_key=key,
        metrics_allow=["127.0.0.1", "10.0.0.0/8"],
        access_log=str(tmp_path / "access.log"),
    )
    result = _nginx_t(site)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_every_server_of_the_production_site_logs_only_failures_without_query_strings(tmp_path):
    # A server without its own access_log falls back to nginx's default log,
    # which records every request line, query string (and token) included.
    site = Site(
        upstreams=["127.0.0.1:8080"],
        server_name="images.example.com",
        certificate="/etc/ssl/images.pem",
        certificate_key="/etc/ssl/images.key",
        access_log=str(tmp_path / "access.log"),
    )
    log = f"access_log {tmp_path / 'access.log'} image_catalogue"
    servers = site.render().split("\nserver {")[1:]
    assert len(servers) == 3  # the HTTP redirect, the default server, the site
    for server in servers:
        if "return 444;" in server:  # the default server answers nothing but failures
            assert f"{log};" in server
        else:
            assert f"{log} if=$image_catalogue_failed;" in server


def test_nginx_t_rejects_a_broken_site(tmp_path):
    site = Site(upstreams=["127.0.0.1:8080"], access_log=str(tmp_path / "access.log"))
    site.metrics_allow = ["not an address"]
    assert _nginx_t(site).returncode != 0


def test_the_render_command_prints_the_production_site():
    result = run_catalogue(
        "nginx-site",
        "--server-name",
        "images.example.com",
        "--certificate",
        "/etc/ssl/images.pem",
        "--certificate-key",
        "/etc/ssl/images.key",
        "--upstream",
        "127.0.0.1:8080",
        "--upstream",
        "127.0.0.1:8081",
        capture_output=True,
        check=True,
    )
    assert "server_name images.example.com;" in result.stdout
    assert "ssl_certificate /etc/ssl/images.pem;" in result.stdout
    assert result.stdout.count("max_fails=0;") == 2


def _haproxy_c(tmp_path, **changes):
    """`haproxy -c` of a production configuration (with `changes`) and a real certificate."""
    _, certificate, key, _ = tls_files(tmp_path, "images.example.com")
    pem = tmp_path / "images.example.com.pem"
    pem.write_text(Path(certificate).read_text() + Path(key).read_text())
    config = HAProxyConfig(
        bind="192.0.2.10:443",
        certificate=str(pem),
        server_name="images.example.com",
        servers={"ctl1-8080": "10.0.0.11:8080", "ctl1-8081": "10.0.0.11:8081"},
        metrics_allow=["127.0.0.1", "10.0.0.0/8"],
    )
    for name, value in changes.items():
        setattr(config, name, value)
    (tmp_path / "haproxy.cfg").write_text(config.render())
    return subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )


def test_the_haproxy_configuration_passes_haproxy_c_without_warnings(tmp_path):
    result = _haproxy_c(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_haproxy_c_rejects_a_broken_configuration(tmp_path):
    assert _haproxy_c(tmp_path, metrics_allow=["10.0.0.0/33"]).returncode != 0


@pytest.mark.parametrize("unit", UNITS + TIMERS, ids=lambda path: path.name)
def test_systemd_units_pass_systemd_analyze_verify(tmp_path, unit):
    for shipped in UNITS:  # a timer's service beside it
        (tmp_path / shipped.name).write_text(
            shipped.read_text().replace(INSTALLED_AT, str(ROOT / ".venv"))
        )
    text = unit.read_text().replace(INSTALLED_AT, str(ROOT / ".venv"))
    template = tmp_path / unit.name
    template.write_text(text)
    checked = template
    if unit.name.endswith("@.service"):
        checked = tmp_path / unit.name.replace("@.", "@8080.")
        checked.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(checked)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert problems == []


def test_units_run_as_a_dedicated_user_without_privileges():
    for unit in UNITS:
        text = unit.read_text()
        for setting in ("User=image-catalogue", "NoNewPrivileges=yes", "ProtectSystem=strict"):
            assert setting in text, (unit.name, setting)


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path):
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/nonexistent/binary\nTypo=1\n")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0 or str(tmp_path) in result.stderr
