"""Real OpenStack clients against the service running under gunicorn."""

import datetime as dt

import openstack
import pytest
import requests
from glanceclient.v1 import client as glance_v1

from helpers import BASE_TIME

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
