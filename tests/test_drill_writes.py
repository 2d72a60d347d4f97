"""Drill: v1 writes carried out through a real Glance 33, with a real Keystone's tokens.

python-glanceclient's v1 client and the `glance` command line, unmodified,
write through the service; each result is read back through the listing,
image-show and Glance v2 directly, and the mirror's next pass finds nothing
to change. Faults: Glance down, tokens Glance refuses, an upload cut off.
"""

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest
import requests
from glanceclient import exc as glance_errors
from glanceclient.v1 import client as glance_v1

from deploy.commands import run_catalogue
from deploy.processes import READY_DEADLINE_SECONDS, free_port
from helpers import BackgroundLoop, serving_bytes
from servers import start_service

pytestmark = pytest.mark.drill
DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(scope="module")
def catalogue_url(module_database):
    run_catalogue(
        "db", "upgrade", env=_environment(module_database), check=True, capture_output=True
    )
    return module_database


def _environment(catalogue_url, **more):
    return {**os.environ, "DATABASE_URL": catalogue_url, **more}


@pytest.fixture(scope="module")
def service(openstack, catalogue_url):
    server = start_service(
        catalogue_url,
        **openstack.catalogue_settings(),
        GLANCE_API_READ_TIMEOUT="30",
        TOKEN_CACHE_SECONDS="0",
    )
    yield server
    server.stop()


@pytest.fixture
def glance(openstack, service):
    """python-glanceclient's v1 client on the service, as the demo project."""
    openstack.delete_images()
    return glance_v1.Client(service.url, token=openstack.token("demo"))


def _v2(openstack, image_id, user="demo"):
    answer = openstack.sessions[user].get(
        f"{openstack.glance_url}/v2/images/{image_id}", raise_exc=False
    )
    return answer.json() if answer.status_code == 200 else answer.status_code


def _listed(service, token, **params):
    answer = requests.get(
        f"{service.url}/v1/images/detail",
        params={"changes-since": "2000-01-01", **params},
        headers={"X-Auth-Token": token},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {image["id"]: image for image in answer.json()["images"]}


def test_create_update_download_and_delete_with_glanceclient(openstack, service, glance):
    token = openstack.token("demo")
    image = glance.images.create(
        name="drill",
        disk_format="raw",
        container_format="bare",
        data=io.BytesIO(DATA),
        properties={"os_distro": "drill", "hw_disk_bus": "virtio"},
    )
    assert (image.status, image.size, image.checksum) == (
        "active",
        len(DATA),
        hashlib.md5(DATA).hexdigest(),
    )
    # At once, through the listing, image-show and Glance v2.
    listed = _listed(service, token)[image.id]
    assert listed["properties"] == {"os_distro": "drill", "hw_disk_bus": "virtio"}
    assert glance.images.get(image.id).checksum == image.checksum
    assert _v2(openstack, image.id)["checksum"] == image.checksum
    assert b"".join(glance.images.data(image.id)) == DATA

    glance.images.update(image.id, name="renamed", properties={"added": "1"}, purge_props=False)
    assert _listed(service, token)[image.id]["properties"] == {
        "os_distro": "drill",
        "hw_disk_bus": "virtio",
        "added": "1",
    }
    glance.images.update(image.id, properties={"kept": "2"}, purge_props=True)
    updated = _listed(service, token)[image.id]
    assert (updated["name"], updated["properties"]) == ("renamed", {"kept": "2"})
    assert _v2(openstack, image.id)["kept"] == "2" and "added" not in _v2(openstack, image.id)

    glance.images.delete(image.id)
    assert _listed(service, token)[image.id]["deleted"] is True
    assert _v2(openstack, image.id) == 404


def test_members_added_replaced_and_removed(openstack, service, glance):
    other = openstack.project_ids["other"]
    image = glance.images.create(
        name="shared", disk_format="raw", container_format="bare", data=io.BytesIO(DATA)
    )
    glance.image_members.create(image, other, can_share=False)
    assert [m.member_id for m in glance.image_members.list(image=image)] == [other]
    assert image.id in _listed(service, openstack.token("other"))
    shared = glance.image_members.list(member=other)
    assert [entry.image_id for entry in shared] == [image.id]

    glance.image_members.replace(image, [{"member_id": openstack.project_ids["admin"]}])
    assert [m.member_id for m in glance.image_members.list(image=image)] == [
        openstack.project_ids["admin"]
    ]
    assert image.id not in _listed(service, openstack.token("other"))

    glance.image_members.delete(image.id, openstack.project_ids["admin"])
    assert glance.image_members.list(image=image) == []
    v2_members = openstack.sessions["demo"].get(
        f"{openstack.glance_url}/v2/images/{image.id}/members"
    )
    assert v2_members.json()["members"] == []


def test_the_glance_command_line_writes_through_the_service(openstack, service, glance, tmp_path):
    data = tmp_path / "image.raw"
    data.write_bytes(DATA)
    command = [
        str(Path(sys.executable).parent / "glance"),
        *("--os-image-api-version", "1", "--os-image-url", service.url),
        *("--os-auth-token", openstack.token("demo")),
    ]

    def glance_cli(*arguments):
        # Without a terminal, the glance command reads image data from its standard
        # input unless that is closed (its documented `<&-`, as in cron jobs).
        closed_stdin = ["sh", "-c", 'exec "$@" <&-', "glance"]
        result = subprocess.run(
            [*closed_stdin, *command, *arguments], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    created = glance_cli(
        "image-create",
        *("--name", "from-cli", "--disk-format", "raw", "--container-format", "bare"),
        *("--property", "os_distro=cli", "--file", str(data)),
    )
    image_id = _field(created, "id")
    assert _field(created, "status") == "active"
    glance_cli("image-update", image_id, "--name", "cli-renamed")
    glance_cli("member-create", image_id, openstack.project_ids["other"])
    assert image_id in _listed(service, openstack.token("other"))
    glance_cli("member-delete", image_id, openstack.project_ids["other"])
    glance_cli("image-delete", image_id)
    assert _listed(service, openstack.token("demo"))[image_id]["deleted"] is True


def _field(table, name):
    """A value of the `glance` command's property table."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no {name} in {table}")


@pytest.fixture
def files():
    """An HTTP server on loopback serving DATA (what Glance's web-download fetches)."""
    with serving_bytes(DATA) as url:
        yield f"{url}/image.raw"


@pytest.mark.parametrize("source", ["copy_from", "location"])
def test_copy_from_and_location_become_glances_import_and_location(
    openstack, glance, files, source
):
    image = glance.images.create(
        name=source, disk_format="raw", container_format="bare", **{source: files}
    )
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while _v2(openstack, image.id)["status"] != "active":
        assert time.monotonic() < deadline, f"{source}: {_v2(openstack, image.id)}"
        time.sleep(0.2)
    assert _v2(openstack, image.id)["size"] == len(DATA)


def _mirror_pass(openstack, catalogue_url):
    """What one `images sync-glance` run of the service's Glance says it changed."""
    return run_catalogue(
        *("images", "sync-glance"),
        env=_environment(catalogue_url, GLANCE_DATABASE_URL=openstack.glance_database_url),
        capture_output=True,
        check=True,
    ).stdout.strip()


def test_the_mirrors_next_pass_agrees_with_every_write(openstack, service, catalogue_url, glance):
    _mirror_pass(openstack, catalogue_url)  # what the drills did to Glance directly
    image = glance.images.create(
        name="mirrored", disk_format="raw", container_format="bare", data=io.BytesIO(DATA)
    )
    glance.images.update(image.id, properties={"p": "1"})
    glance.image_members.create(image, openstack.project_ids["other"])
    glance.images.create(name="reserved", disk_format="raw", container_format="bare")
    glance.images.delete(
        glance.images.create(name="gone", disk_format="raw", container_format="bare").id
    )
    assert _mirror_pass(openstack, catalogue_url).startswith("0 inserted, 0 updated,")


def test_a_write_the_catalogue_cannot_take_at_once_answers_as_glance_has_it(
    openstack, catalogue_url, glance
):
    _mirror_pass(openstack, catalogue_url)
    unreachable = f"postgresql://glance@127.0.0.1:{free_port()}/glance"
    server = start_service(
        catalogue_url, **{**openstack.catalogue_settings(), "GLANCE_DATABASE_URL": unreachable}
    )
    try:
        client = glance_v1.Client(server.url, token=openstack.token("demo"))
        image = client.images.create(
            name="unmirrored",
            disk_format="raw",
            container_format="bare",
            data=io.BytesIO(DATA),
            properties={"os_distro": "later"},
        )
    finally:
        server.stop()
    assert (image.status, image.size, image.properties) == (
        "active",
        len(DATA),
        {"os_distro": "later"},
    )
    assert image.checksum == hashlib.md5(DATA).hexdigest()
    # The write stood in Glance; the mirror brings it to the catalogue.
    assert _mirror_pass(openstack, catalogue_url).startswith("1 inserted, 0 updated,")


def test_tokens_glance_refuses_are_its_answers(openstack, service, glance):
    image = glance.images.create(
        name="private", disk_format="raw", container_format="bare", data=io.BytesIO(DATA)
    )
    other = glance_v1.Client(service.url, token=openstack.token("other"))
    with pytest.raises(glance_errors.HTTPNotFound):
        other.images.delete(image.id)
    with pytest.raises(glance_errors.HTTPForbidden):
        other.images.create(
            name="public", is_public=True, disk_format="raw", container_format="bare"
        )
    with pytest.raises(glance_errors.HTTPUnauthorized):
        glance_v1.Client(service.url, token="not-a-token").images.delete(image.id)
    assert _v2(openstack, image.id)["status"] == "active"


def test_glance_down_is_a_503_with_retry_after(openstack, service):
    openstack.delete_images()
    with openstack.glance.down():
        started = time.monotonic()
        answer = requests.post(
            f"{service.url}/v1/images",
            headers={"X-Auth-Token": openstack.token("demo"), "x-image-meta-name": "down"},
            timeout=60,
        )
        took = time.monotonic() - started
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "Glance" in answer.json()["error"]["message"]
    assert took < 30


# 3 MiB of the 10 it promised, or 3 chunks and no last one (python-glanceclient sends chunked).
CUT_OFF = {
    "length": (f"Content-Length: {10 * len(DATA)}\r\n", DATA * 3),
    "chunked": ("Transfer-Encoding: chunked\r\n", f"{len(DATA):x}\r\n".encode() + DATA + b"\r\n"),
}


@pytest.mark.parametrize("cut_off", ["length", "chunked"])
def test_an_upload_cut_off_leaves_no_image_behind(openstack, service, catalogue_url, cut_off):
    openstack.delete_images()
    host, port = service.url.removeprefix("http://").split(":")
    framing, sent = CUT_OFF[cut_off]
    head = (
        "POST /v1/images HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"X-Auth-Token: {openstack.token('demo')}\r\n"
        "x-image-meta-name: cut\r\n"
        "x-image-meta-disk_format: raw\r\n"
        "x-image-meta-container_format: bare\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"{framing}\r\n"
    )
    with closing(socket.create_connection((host, int(port)))) as client:
        client.sendall(head.encode() + (sent if cut_off == "length" else sent * 3))
        client.shutdown(socket.SHUT_WR)  # gone, but still reading: the answer ends the write
        answer = client.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b"Client disconnected before sending all data to backend" in answer
    admin = openstack.sessions["admin"]
    assert admin.get(f"{openstack.glance_url}/v2/images?name=cut").json()["images"] == []
    listed = _listed(service, openstack.token("demo"))
    assert [image for image in listed.values() if image["status"] in ("queued", "saving")] == []


@pytest.mark.parametrize(
    "header, value",
    [("x-image-meta-checksum", "0" * 32), ("x-image-meta-size", str(len(DATA) + 1))],
)
def test_data_unlike_its_size_or_checksum_is_refused_and_leaves_no_image(
    openstack, service, header, value
):
    openstack.delete_images()
    answer = requests.post(
        f"{service.url}/v1/images",
        data=DATA,
        headers={
            "X-Auth-Token": openstack.token("demo"),
            "Content-Type": "application/octet-stream",
            "x-image-meta-name": header,
            "x-image-meta-disk_format": "raw",
            "x-image-meta-container_format": "bare",
            header: value,
        },
        timeout=60,
    )
    assert answer.status_code == 400, answer.text
    assert "did not match" in answer.json()["error"]["message"]
    admin = openstack.sessions["admin"]
    assert admin.get(f"{openstack.glance_url}/v2/images?name={header}").json()["images"] == []
    listed = _listed(service, openstack.token("demo"), name=header).values()
    left = [(image["status"], image["deleted"]) for image in listed]
    assert left in ([], [("deleted", True)]), left


def _put_data(openstack, service, image_id, headers):
    """The answer to a v1 update of the image with DATA and `headers`, as demo."""
    return requests.put(
        f"{service.url}/v1/images/{image_id}",
        data=DATA,
        headers={
            "X-Auth-Token": openstack.token("demo"),
            "Content-Type": "application/octet-stream",
            **headers,
        },
        timeout=60,
    )


@pytest.mark.parametrize(
    "refused, status",
    [
        ({"x-image-meta-size": str(2 << 40)}, 413),  # past Glance's image_size_cap (1 TiB)
        ({"x-image-meta-location": "http://127.0.0.1:9/elsewhere"}, 400),  # and the body
    ],
    ids=["over-the-cap", "two-sources"],
)
def test_an_update_refused_for_its_data_changes_nothing(
    openstack, service, glance, refused, status
):
    image = glance.images.create(name="reserved", disk_format="raw", container_format="bare")
    answer = _put_data(openstack, service, image.id, {"x-image-meta-name": "renamed", **refused})
    assert answer.status_code == status, answer.text
    assert (_v2(openstack, image.id)["name"], _v2(openstack, image.id)["status"]) == (
        "reserved",
        "queued",
    )


def test_a_member_list_is_read_as_json_whatever_its_content_type(openstack, service, glance):
    image = glance.images.create(name="shared", disk_format="raw", container_format="bare")
    answer = requests.put(
        f"{service.url}/v1/images/{image.id}/members",
        data=json.dumps({"memberships": [{"member_id": openstack.project_ids["other"]}]}),
        headers={
            "X-Auth-Token": openstack.token("demo"),
            "Content-Type": "application/x-www-form-urlencoded",  # curl -d's
        },
        timeout=60,
    )
    assert answer.status_code == 204, answer.text
    assert [member.member_id for member in glance.image_members.list(image=image.id)] == [
        openstack.project_ids["other"]
    ]


def test_data_refused_on_update_leaves_the_reserved_image_queued(openstack, service, glance):
    image = glance.images.create(name="reserved", disk_format="raw", container_format="bare")
    answer = _put_data(openstack, service, image.id, {"x-image-meta-checksum": "0" * 32})
    assert answer.status_code == 400, answer.text
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while _v2(openstack, image.id)["status"] != "queued":  # Glance gives the upload up
        assert time.monotonic() < deadline, _v2(openstack, image.id)
        time.sleep(0.2)
    assert glance.images.get(image.id).status == "queued"


class _Memory(BackgroundLoop):
    """The largest resident memory of the service's workers while the `with` block runs."""

    def __init__(self, service):
        super().__init__()
        self.master = psutil.Process(service.process.pid)
        self.peak, self.start_rss = 0, self._rss()

    def _rss(self):
        return max(child.memory_info().rss for child in self.master.children())

    def run(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            self.stop.wait(0.05)


def test_a_1_gib_upload_streams_through_a_worker_of_flat_memory(openstack, service, glance):
    size = 1 << 30
    with _Memory(service) as memory:
        answer = requests.post(
            f"{service.url}/v1/images",
            data=(DATA for _ in range(size // len(DATA))),
            headers={
                "X-Auth-Token": openstack.token("demo"),
                "Content-Type": "application/octet-stream",
                "x-image-meta-name": "one-gib",
                "x-image-meta-disk_format": "raw",
                "x-image-meta-container_format": "bare",
                "x-image-meta-size": str(size),
            },
            timeout=600,
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["image"]["size"] == size
    grew = (memory.peak - memory.start_rss) / 2**20
    print(f"1 GiB upload: a worker's memory grew by {grew:.1f} MiB at most")
    assert grew < 64
