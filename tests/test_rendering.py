import datetime as dt
import re

import pytest

from helpers import CIRROS, image_ids


def _insert_sample(make_image):
    fields = {
        key: value for key, value in CIRROS.items() if key not in ("created_at", "updated_at")
    }
    make_image(
        **fields,
        created_at=dt.datetime(2016, 5, 22, 6, 4, 20, 425843, tzinfo=dt.UTC),
        updated_at=dt.datetime(2016, 5, 22, 6, 4, 22, 719791, tzinfo=dt.UTC),
    )


def test_sample_image_renders_exactly_like_the_reference(list_images, make_image):
    _insert_sample(make_image)
    response = list_images("disk_format=qcow2")
    assert response.status_code == 200
    assert response.get_json() == {"images": [CIRROS]}
    assert list(response.get_json()["images"][0]) == list(CIRROS)


def test_response_headers(list_images, make_image):
    make_image()
    response = list_images()
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert re.fullmatch(r"req-[0-9a-f-]{36}", response.headers["X-Openstack-Request-Id"])


def test_incoming_request_id_is_reused_with_prefix(client, make_token):
    token = make_token()
    response = client.get(
        "/v1.1/images/detail", headers={"X-Auth-Token": token, "X-Openstack-Request-Id": "abc-123"}
    )
    assert response.headers["X-Openstack-Request-Id"] == "req-abc-123"
    response = client.get(
        "/v1.1/images/detail", headers={"X-Auth-Token": token, "X-Openstack-Request-Id": "x" * 65}
    )
    assert re.fullmatch(r"req-[0-9a-f-]{36}", response.headers["X-Openstack-Request-Id"])


def test_request_id_is_on_errors_too(client):
    response = client.get("/v1.1/images/detail")
    assert response.status_code == 401
    assert response.headers["X-Openstack-Request-Id"].startswith("req-")


def test_timestamps_are_utc_with_six_fractional_digits(list_images, make_image):
    plus_two = dt.timezone(dt.timedelta(hours=2))
    make_image(
        created_at=dt.datetime(2020, 1, 1, 2, 0, 0, tzinfo=plus_two),
        updated_at=dt.datetime(2020, 1, 1, 12, 30, 0, 5, tzinfo=dt.UTC),
        deleted_at=None,
    )
    (image,) = list_images().get_json()["images"]
    assert image["created_at"] == "2020-01-01T00:00:00.000000"
    assert image["updated_at"] == "2020-01-01T12:30:00.000005"
    assert image["deleted_at"] is None


def test_deleted_image_shows_deleted_at_and_no_properties(list_images, make_image):
    make_image(
        status="deleted",
        deleted=True,
        deleted_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        updated_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        properties={"os_distro": "ubuntu"},
    )
    (image,) = list_images("changes-since=2025-01-01").get_json()["images"]
    assert image["deleted"] is True
    assert image["deleted_at"] == "2025-01-02T03:04:05.000000"
    assert image["properties"] == {}


def test_properties_are_rendered_as_strings(list_images, make_image):
    make_image(properties={"os_distro": "ubuntu", "hw_disk_bus": "virtio"})
    (image,) = list_images().get_json()["images"]
    assert image["properties"] == {"os_distro": "ubuntu", "hw_disk_bus": "virtio"}


def test_empty_result_is_exactly_an_empty_list(list_images):
    response = list_images()
    assert response.get_data().strip() == b'{"images":[]}'


def test_every_image_has_the_18_keys(list_images, make_image):
    make_image(size=None, name=None, checksum=None, owner=None, disk_format=None)
    (image,) = list_images().get_json()["images"]
    assert set(image) == set(CIRROS)
    assert image["min_ram"] == 0 and image["min_disk"] == 0


def test_v1_path_serves_the_same_listing(list_images, make_image):
    make_image()
    assert image_ids(list_images(path="/v1/images/detail")) == image_ids(list_images())


def test_request_id_that_already_has_the_prefix_is_kept_as_is(client):
    response = client.get("/healthz", headers={"X-Openstack-Request-Id": "req-abc-123"})
    assert response.headers["X-Openstack-Request-Id"] == "req-abc-123"


@pytest.mark.parametrize("incoming", ["abc\x01def", "has space", "tab\there", "é-accent"])
def test_request_id_with_unprintable_characters_is_replaced(client, incoming):
    response = client.get("/healthz", headers={"X-Openstack-Request-Id": incoming})
    assert re.fullmatch(r"req-[0-9a-f-]{36}", response.headers["X-Openstack-Request-Id"])
