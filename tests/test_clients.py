"""Real OpenStack clients against the service running under gunicorn."""

import datetime as dt
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openstack
import pytest
import requests
from glanceclient import exc as glance_exceptions
from glanceclient.v1 import client as glance_v1

from helpers import BASE_TIME
from servers import start_service

# openstacksdk's own code trips its future-removal warnings (InfluxDB support,
# a service_type argument it passes itself); nothing this project calls.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


@pytest.fixture
def catalogue(make_image):
    ids = []
    for number in range(53):
        ids.append(
            make_image(
                name=None if number % 17 == 0 else f"img-{number % 9}",
                disk_format="qcow2" if number % 3 else "raw",
                size=None if number % 11 == 0 else number * 1000,
                is_public=number % 4 == 0,
                owner="p0" if number % 2 else "p1",
                members=["p0"] if number % 5 == 0 else [],
                properties={"os_distro": "ubuntu" if number % 2 else "debian"},
                created_at=BASE_TIME + dt.timedelta(minutes=number // 2),
            )
        )
    return ids


def _direct(base_url, token, **params):
    response = requests.get(
        f"{base_url}/v1/images/detail",
        params={"limit": 1000, **params},
        headers={"X-Auth-Token": token},
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()["images"]


def test_glanceclient_pages_with_markers_like_direct_http(live_server, catalogue, make_token):
    token = make_token(project="p0")
    glance = glance_v1.Client(live_server, token=token)
    listed = list(glance.images.list(page_size=4, sort_key="name", sort_dir="asc"))
    expected = _direct(live_server, token, sort_key="name", sort_dir="asc")
    assert [image.id for image in listed] == [image["id"] for image in expected]
    assert len(expected) > 4 * 5  # several pages really were walked
    assert {image.properties["os_distro"] for image in listed} == {"ubuntu", "debian"}


def test_glanceclient_filters_match_direct_http(live_server, catalogue, make_token):
    token = make_token(project="p0")
    glance = glance_v1.Client(live_server, token=token)
    filters = {"disk_format": "qcow2", "size_min": 5000, "properties": {"os_distro": "ubuntu"}}
    listed = list(glance.images.list(filters=filters, page_size=3))
    expected = _direct(
        live_server, token, disk_format="qcow2", size_min=5000, **{"property-os_distro": "ubuntu"}
    )
    assert [image.id for image in listed] == [image["id"] for image in expected]
    assert listed and all(image.disk_format == "qcow2" for image in listed)


def test_glanceclient_admin_all_tenants(live_server, catalogue, make_token):
    admin = glance_v1.Client(live_server, token=make_token(project="p9", roles=("admin",)))
    everything = list(admin.images.list(filters={"is_public": None}, page_size=10))
    assert sorted(image.id for image in everything) == sorted(catalogue)


def test_openstacksdk_discovers_the_api_and_lists(live_server, catalogue, make_token):
    token = make_token(project="p0")
    connection = openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": live_server, "token": token},
        image_endpoint_override=f"{live_server}/",
        image_api_version="1",
        load_yaml_config=False,
        load_envvars=False,
    )
    # Discovery read the versions document and picked the newest v1 endpoint.
    assert connection.image.get_endpoint() == f"{live_server}/v1.1/"
    listed = list(connection.image.images(disk_format="raw", limit=1000))
    expected = _direct(live_server, token, disk_format="raw")
    assert [image.id for image in listed] == [image["id"] for image in expected]
    assert listed and {image.disk_format for image in listed} == {"raw"}


@pytest.fixture
def shown(make_image):
    """Images of each kind a caller of project p0 may or may not show."""
    return {
        "public": make_image(name="public-one", properties={"os_distro": "café"}),
        "own": make_image(name="own-one", is_public=False, owner="p0"),
        "shared": make_image(name="shared-one", is_public=False, owner="p1", members=["p0"]),
        "admin only": make_image(name="admin-one", is_public=False, owner="p1"),
        "deleted": make_image(
            name="deleted-one",
            is_public=False,
            owner="p0",
            status="deleted",
            deleted=True,
            deleted_at=BASE_TIME,
        ),
    }


def test_glanceclient_shows_each_kind_of_image_as_image_show_does(live_server, shown, make_token):
    member = glance_v1.Client(live_server, token=make_token(project="p0"))
    admin = glance_v1.Client(live_server, token=make_token(project="p9", roles=("admin",)))
    for kind in ("public", "own", "shared"):
        image = member.images.get(shown[kind])
        assert (image.id, image.name) == (shown[kind], f"{kind}-one")
    public = member.images.get(shown["public"])
    assert public.is_public is True and public.size == 1000 and public.min_ram == 0
    # Header values are bytes: glanceclient reads them as latin-1, the UTF-8 sent stays whole.
    assert public.properties["os_distro"].encode("latin-1").decode("utf-8") == "café"
    with pytest.raises(glance_exceptions.HTTPNotFound):
        member.images.get(shown["admin only"])
    assert admin.images.get(shown["admin only"]).owner == "p1"
    deleted = member.images.get(shown["deleted"])
    assert deleted.deleted is True and deleted.status == "deleted"


def test_glanceclient_lists_members_by_image_and_by_project(live_server, shown, make_token):
    owner = glance_v1.Client(live_server, token=make_token(project="p1"))
    by_image = owner.image_members.list(image=shown["shared"])
    assert [(m.image_id, m.member_id, m.can_share) for m in by_image] == [
        (shown["shared"], "p0", False)
    ]
    member = glance_v1.Client(live_server, token=make_token(project="p0"))
    by_project = member.image_members.list(member="p0")
    assert [(m.image_id, m.member_id) for m in by_project] == [(shown["shared"], "p0")]


def _glance(live_server, token, *arguments):
    command = [
        str(Path(sys.executable).parent / "glance"),
        "--os-image-api-version",
        "1",
        "--os-image-url",
        live_server,
        "--os-auth-token",
        token,
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_glance_command_shows_images_and_lists_members(live_server, shown, make_token):
    token = make_token(project="p1")
    shown_image = _glance(live_server, token, "image-show", shown["shared"])
    assert shown_image.returncode == 0, shown_image.stderr
    assert f"| id               | {shown['shared']}" in shown_image.stdout
    assert "| name             | shared-one" in shown_image.stdout
    by_image = _glance(live_server, token, "member-list", "--image-id", shown["shared"])
    assert by_image.returncode == 0, by_image.stderr
    assert f"| {shown['shared']} | p0        |" in by_image.stdout
    by_tenant = _glance(live_server, make_token(project="p0"), "member-list", "--tenant-id", "p0")
    assert by_tenant.returncode == 0, by_tenant.stderr
    assert f"| {shown['shared']} | p0        |" in by_tenant.stdout
    missing = _glance(live_server, make_token(project="p0"), "image-show", shown["admin only"])
    assert missing.returncode == 1
    assert f"No image with a name or ID of '{shown['admin only']}' exists." in missing.stderr


class _ImageData(BaseHTTPRequestHandler):
    """A stand-in for Glance v2's data endpoint: GET /v2/images/{id}/file."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = f"data of {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments):
        pass


@pytest.fixture
def image_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageData)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_openstacksdk_finds_and_gets_images_through_the_image_service(
    database_url, shown, make_token, image_service
):
    server = start_service(database_url, IMAGE_SERVICE_URL=image_service)
    try:
        connection = openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": server.url, "token": make_token(project="p0")},
            image_endpoint_override=f"{server.url}/",
            image_api_version="1",
            load_yaml_config=False,
            load_envvars=False,
        )
        by_name = connection.image.find_image("own-one")
        by_id = connection.image.find_image(shown["own"])
        fetched = connection.image.get_image(shown["public"])
        hidden = connection.image.find_image(shown["admin only"])
    finally:
        server.stop()
    # A name is no image id: a 404, then the listing by name, with every field.
    assert (by_name.id, by_name.name, by_name.is_public) == (shown["own"], "own-one", False)
    # An id: redirected to the Image service's data, as Glance v1 sent data:
    # openstacksdk keeps the id (the docs say so).
    assert by_id.id == shown["own"] and fetched.id == shown["public"]
    assert hidden is None


@pytest.mark.parametrize("properties, readable", [(75, True), (76, False)])
def test_glanceclient_reads_image_show_up_to_99_header_lines(
    live_server, make_image, make_token, properties, readable
):
    # Python's http.client (under requests) reads at most 99 header lines: an
    # image with every field set, its Etag, 75 properties and the 6 headers of
    # every answer fill them (docs/api.md, "One image"); Glance v1 had the same limit.
    image_id = make_image(
        virtual_size=2048,
        deleted_at=BASE_TIME,
        checksum="0" * 32,
        properties={f"p{number:02d}": "v" for number in range(properties)},
    )
    glance = glance_v1.Client(live_server, token=make_token())
    if readable:
        assert len(glance.images.get(image_id).properties) == properties
    else:
        with pytest.raises(glance_exceptions.CommunicationError, match="got more than 100 headers"):
            glance.images.get(image_id)
