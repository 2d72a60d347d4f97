"""The HAProxy configuration `image-catalogue haproxy-config` prints, and the copy the docs show."""

import re
import shlex

from click.testing import CliRunner

from app.cli.serving import haproxy_config
from helpers import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"


def _render(*arguments):
    return CliRunner().invoke(haproxy_config, list(arguments))


def _documented():
    """(the haproxy-config arguments docs/operations.md shows, the output it shows for them)."""
    text = OPERATIONS.read_text()
    command = re.search(r"^\S*image-catalogue haproxy-config (?:.*\\\n)*.*$", text, re.M).group()
    words = shlex.split(command.replace("\\\n", " ").partition("|")[0])
    output = re.search(r"^```\n(# HAProxy for the image catalogue.*?)^```$", text, re.M | re.S)
    return words[words.index("haproxy-config") + 1 :], output.group(1)


def test_the_docs_show_what_their_command_prints():
    arguments, shown = _documented()
    result = _render(*arguments)
    assert result.exit_code == 0, result.output
    assert result.output == shown


def test_127_0_0_1_is_always_allowed_metrics():
    result = _render(
        *("--server-name", "images.example.com", "--certificate", "/etc/haproxy/images.pem"),
        *("--server", "a=10.0.0.11:8080", "--metrics-allow", "10.0.0.0/8"),
    )
    assert "    acl operator src 127.0.0.1 10.0.0.0/8\n" in result.output


def test_every_server_is_checked_and_has_its_own_metrics_path():
    result = _render(
        *("--server-name", "images.example.com", "--certificate", "/etc/haproxy/images.pem"),
        *("--server", "a=10.0.0.11:8080", "--server", "b=10.0.0.12:8080"),
    )
    for number, name, address in [(1, "a", "10.0.0.11:8080"), (2, "b", "10.0.0.12:8080")]:
        assert f"    server {name} {address} check inter 2s fall 3 rise 2\n" in result.output
        assert f"if {{ path /metrics/{number} }}\n" in result.output
        assert f"image_catalogue_metrics_{number}\n    http-request set-path /metrics\n" in (
            result.output
        )


def test_a_server_without_a_name_of_its_own_is_refused():
    for servers in (["10.0.0.11:8080"], ["a=10.0.0.11:8080", "a=10.0.0.12:8080"]):
        arguments = [argument for server in servers for argument in ("--server", server)]
        result = _render("--server-name", "x", "--certificate", "x.pem", *arguments)
        assert result.exit_code == 2
        assert "is not NAME=HOST:PORT with a name of its own" in result.output
