"""Drill: the container image (podman) runs the service against a PostgreSQL over TCP, as a
one-off for migrations and as a long-running server that survives a restart."""

import shutil
import time

import pytest
import requests

from deploy import podman
from deploy.cluster import lone_server
from deploy.processes import READY_DEADLINE_SECONDS, free_port
from helpers import ROOT, import_line

pytestmark = pytest.mark.drill
# What the image may weigh: Debian's slim base (about 75 MB) and the locked dependencies.
MAX_IMAGE_MB = 350


@pytest.fixture(scope="module")
def image(wheel, tmp_path_factory):
    """The image, built from the wheel in a context holding only what the Containerfile copies."""
    context = tmp_path_factory.mktemp("context")
    (context / "dist").mkdir()
    shutil.copy(wheel, context / "dist")
    shutil.copy(ROOT / "requirements.lock", context)
    began = time.monotonic()
    name = podman.build(context, log=lambda message: None)
    size = podman.image_size_mb(name)
    print(f"container image {name}: built in {time.monotonic() - began:.0f} s, {size:.0f} MB")
    assert size < MAX_IMAGE_MB
    return name


@pytest.fixture(scope="module")
def postgres():
    with lone_server() as server:
        yield server


def test_the_image_migrates_loads_and_serves_through_a_restart(image, postgres, tmp_path):
    database = {"DATABASE_URL": postgres.url()}
    podman.run_once(image, "db", "upgrade", environment=database)
    line = import_line(name="in-a-container") + "\n"
    podman.run_once(image, "images", "import", "-", environment=database, stdin=line)
    token = podman.run_once(image, "tokens", "issue", "--project", "p1", environment=database)

    # The long-running server reads a mounted configuration file, as in production.
    port = free_port()
    config = tmp_path / "image-catalogue.conf"
    config.write_text(f"[DEFAULT]\nbind_port = {port}\n[database]\nconnection = {postgres.url()}\n")
    config.chmod(0o644)
    volume = f"{config}:/etc/image-catalogue/image-catalogue.conf:ro"
    # The image listens on every address (HOST=0.0.0.0); on the host's network, loopback only.
    container = podman.Container(
        image, f"image-catalogue-drill-{port}", volumes=[volume], environment={"HOST": "127.0.0.1"}
    )
    try:
        container.wait_until_healthy()
        assert _listed(port, token.strip()) == ["in-a-container"]
        assert container.exec("id", "-u").strip() == "10001"
        container.restart()
        container.wait_until_healthy()
        assert _listed(port, token.strip()) == ["in-a-container"]
    finally:
        container.stop()


def test_a_one_off_command_with_a_wrong_setting_says_so_in_one_line(image):
    with pytest.raises(podman.ProcessFailed) as failed:
        podman.run_once(image, "tokens", "list", environment={"DATABASE_URL": "mysql://db/x"})
    assert "[database] connection must be a postgresql:// URL" in str(failed.value)


def _listed(port, token):
    response = requests.get(
        f"http://127.0.0.1:{port}/v1/images/detail",
        headers={"X-Auth-Token": token},
        timeout=READY_DEADLINE_SECONDS,
    )
    assert response.status_code == 200, response.text
    return [image["name"] for image in response.json()["images"]]
