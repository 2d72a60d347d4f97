"""Drill: the `openstack` fixture is a real Keystone and Glance that the demo user can use."""

import hashlib
import time

import pytest
import requests
import sqlalchemy as sa

from app.db import with_installed_driver
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import serving_bytes

pytestmark = pytest.mark.drill
IMAGE_BYTES = b"".join(bytes([n % 251]) * 4096 for n in range(64))


@pytest.fixture(autouse=True)
def empty_glance(openstack):
    yield
    openstack.delete_images()


def _glance(openstack, user):
    session = requests.Session()
    session.headers["X-Auth-Token"] = openstack.token(user)
    return session


def _create_image(glance, openstack, **fields):
    answer = glance.post(
        f"{openstack.glance_url}/v2/images",
        json={"disk_format": "raw", "container_format": "bare", **fields},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _wait_until_imported(glance, url):
    """Wait until the image is active and its import task has let go of it; return the image.

    Glance makes the image active before the task drops its lock (the
    os_glance_import_task property): a delete in between fails with a 500.
    """
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        image = glance.get(url, timeout=30).json()
        if image["status"] == "active" and "os_glance_import_task" not in image:
            return image
        assert time.monotonic() < deadline, f"the import did not finish: {image}"
        time.sleep(0.1)


def test_keystone_lists_glance_and_gives_each_user_its_role(openstack):
    for user, roles in [
        ("admin", {"admin", "manager", "member", "reader"}),
        ("demo", {"member", "reader"}),
    ]:
        session = openstack.sessions[user]
        assert set(session.auth.get_access(session).role_names) == roles
        for interface in ("public", "internal"):
            endpoint = session.get_endpoint(service_type="image", interface=interface)
            assert endpoint == openstack.glance_url


def test_demo_uploads_shares_downloads_and_deletes_an_image(openstack):
    demo = _glance(openstack, "demo")
    image_id = _create_image(demo, openstack, name="drill-upload", visibility="shared")
    image_url = f"{openstack.glance_url}/v2/images/{image_id}"

    chunks = (IMAGE_BYTES[start : start + 65536] for start in range(0, len(IMAGE_BYTES), 65536))
    upload = demo.put(
        image_url + "/file",
        data=chunks,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert upload.status_code == 204, upload.text

    image = demo.get(image_url, timeout=30).json()
    assert image["status"] == "active"
    assert image["size"] == len(IMAGE_BYTES)
    assert image["checksum"] == hashlib.md5(IMAGE_BYTES).hexdigest()
    assert image["owner"] == openstack.project_ids["demo"]
    assert demo.get(image_url + "/file", timeout=60).content == IMAGE_BYTES
    assert (openstack.image_folder / image_id).read_bytes() == IMAGE_BYTES

    other = _glance(openstack, "other")
    assert other.get(image_url, timeout=30).status_code == 404
    member = demo.post(
        image_url + "/members", json={"member": openstack.project_ids["other"]}, timeout=30
    )
    assert member.status_code == 200, member.text
    assert other.get(image_url, timeout=30).json()["id"] == image_id

    with sa.create_engine(with_installed_driver(openstack.glance_database_url)).connect() as db:
        row = db.execute(
            sa.text("SELECT owner, size, status, visibility FROM images WHERE id = :id"),
            {"id": image_id},
        ).one()
        members = db.execute(
            sa.text("SELECT member FROM image_members WHERE image_id = :id"), {"id": image_id}
        ).scalars()
        assert tuple(row) == (openstack.project_ids["demo"], len(IMAGE_BYTES), "active", "shared")
        assert list(members) == [openstack.project_ids["other"]]

    assert demo.delete(image_url, timeout=30).status_code == 204
    assert demo.get(image_url, timeout=30).status_code == 404
    assert not (openstack.image_folder / image_id).exists()


@pytest.fixture
def image_server():
    """A loopback HTTP server of IMAGE_BYTES; its URL."""
    with serving_bytes(IMAGE_BYTES) as url:
        yield f"{url}/drill.raw"


def test_web_download_import_fetches_from_loopback(openstack, image_server):
    demo = _glance(openstack, "demo")
    methods = demo.get(f"{openstack.glance_url}/v2/info/import", timeout=30).json()
    assert methods["import-methods"]["value"] == ["glance-direct", "web-download"]
    image_id = _create_image(demo, openstack, name="drill-web-download")
    image_url = f"{openstack.glance_url}/v2/images/{image_id}"

    started = demo.post(
        image_url + "/import",
        json={"method": {"name": "web-download", "uri": image_server}},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    image = _wait_until_imported(demo, image_url)
    assert image["size"] == len(IMAGE_BYTES)
    assert image["checksum"] == hashlib.md5(IMAGE_BYTES).hexdigest()
    assert demo.get(image_url + "/file", timeout=60).content == IMAGE_BYTES
    assert demo.delete(image_url, timeout=30).status_code == 204


def test_add_location_reads_an_http_image(openstack, image_server):
    demo = _glance(openstack, "demo")
    image_id = _create_image(demo, openstack, name="drill-location")
    image_url = f"{openstack.glance_url}/v2/images/{image_id}"

    added = demo.post(image_url + "/locations", json={"url": image_server}, timeout=30)
    assert added.status_code == 202, added.text
    image = _wait_until_imported(demo, image_url)
    assert image["size"] == len(IMAGE_BYTES)
    assert image["checksum"] == hashlib.md5(IMAGE_BYTES).hexdigest()
    assert image["stores"] == "web"
    assert demo.get(image_url + "/file", timeout=60).content == IMAGE_BYTES
    assert demo.delete(image_url, timeout=30).status_code == 204


def test_glance_down_refuses_connections_then_serves_again(openstack):
    demo = _glance(openstack, "demo")
    images = f"{openstack.glance_url}/v2/images"
    with openstack.glance.down(), pytest.raises(requests.ConnectionError):
        demo.get(images, timeout=5)
    assert demo.get(images, timeout=30).status_code == 200


def test_glance_restarted_with_other_options_then_with_glances_own(openstack, image_server):
    demo = _glance(openstack, "demo")
    add_location = {
        "json": [
            {"op": "add", "path": "/locations/-", "value": {"url": image_server, "metadata": {}}}
        ],
        "headers": {"Content-Type": "application/openstack-images-v2.1-json-patch"},
        "timeout": 30,
    }

    def upload(data, **fields):
        image_id = _create_image(demo, openstack, **fields)
        return demo.put(
            f"{openstack.glance_url}/v2/images/{image_id}/file",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )

    with openstack.glance.configured(
        image_size_cap=len(IMAGE_BYTES),
        show_multiple_locations=True,
        require_image_format_match=False,
    ):
        assert upload(IMAGE_BYTES + b"!").status_code == 413
        assert upload(IMAGE_BYTES, disk_format="qcow2").status_code == 204
        located = _create_image(demo, openstack)
        patched = demo.patch(f"{openstack.glance_url}/v2/images/{located}", **add_location)
        assert patched.status_code == 200, patched.text
        assert patched.json()["locations"] == [{"url": image_server, "metadata": {"store": "web"}}]
        assert patched.json()["status"] == "active"

    assert upload(IMAGE_BYTES, disk_format="qcow2").status_code == 415
    hidden = _create_image(demo, openstack)
    refused = demo.patch(f"{openstack.glance_url}/v2/images/{hidden}", **add_location)
    assert refused.status_code == 403, refused.text
