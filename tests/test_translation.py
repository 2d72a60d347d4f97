"""v1 write headers to Glance v2 calls (app/glance/translation.py): pure functions, no network."""

import pytest

from app.glance.translation import (
    V1Invalid,
    create_request,
    read_v1_image,
    update_operations,
    v1_membership_list,
    v1_record,
)
from app.images.schemas import ImageSchema


def _environ(**headers):
    """A WSGI environ with these headers (names as WSGI spells them, after HTTP_)."""
    return {f"HTTP_{name.upper()}": value for name, value in headers.items()}


def test_fields_and_properties_are_read_as_v1_read_them():
    image = read_v1_image(
        _environ(
            x_image_meta_name="Ubuntu%2024.04",  # python-glanceclient %-encodes values
            x_image_meta_disk_format="qcow2",
            x_image_meta_container_format="bare",
            x_image_meta_min_ram="512",
            x_image_meta_is_public="Yes",
            x_image_meta_protected="no",
            x_image_meta_property_os_distro="ubuntu",
            x_image_meta_property_HW_DISK_BUS="virtio",
            x_image_meta_id="{A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D}",
        )
    )
    assert image.fields == {
        "name": "Ubuntu 24.04",
        "disk_format": "qcow2",
        "container_format": "bare",
        "min_ram": 512,
        "is_public": True,
        "protected": False,
        "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    }
    assert image.properties == {"os_distro": "ubuntu", "hw_disk_bus": "virtio"}
    assert image.purge is True


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({"x_image_meta_colour": "red"}, 400, "Bad header: x-image-meta-colour"),
        ({"x_image_meta_size": "big"}, 400, "Cannot convert image size 'big' to an integer"),
        ({"x_image_meta_min_disk": "-1"}, 400, "Cannot be a negative value"),
        ({"x_image_meta_name": "x" * 256}, 400, "Image name too long: 256"),
        ({"x_image_meta_checksum": "0" * 33}, 400, "can't exceed 32 characters"),
        ({"x_image_meta_id": "not-a-uuid"}, 400, "Invalid image id format"),
        (
            {"x_image_meta_disk_format": "aki", "x_image_meta_container_format": "bare"},
            400,
            "Invalid mix of disk and container formats",
        ),
        ({"x_image_meta_property_visibility": "public"}, 403, "'visibility' is reserved"),
        ({"x_image_meta_property_os_glance_x": "1"}, 403, "'os_glance_x' is reserved"),
    ],
)
def test_what_v1_refused_is_refused_with_its_message(headers, status, message):
    with pytest.raises(V1Invalid) as refused:
        read_v1_image(_environ(**headers))
    assert refused.value.status == status and message in str(refused.value)


def test_an_ami_format_goes_for_both():
    image = read_v1_image(_environ(x_image_meta_disk_format="ari"))
    assert image.fields["container_format"] == "ari"


def test_create_asks_v2_for_public_only_when_is_public_and_takes_owner_from_admins_only():
    image = read_v1_image(
        _environ(
            x_image_meta_name="n",
            x_image_meta_owner="someone",
            x_image_meta_is_public="false",
            x_image_meta_size="10",
            x_image_meta_property_k="v",
        )
    )
    assert create_request(image, admin=False) == {"name": "n", "k": "v"}
    assert create_request(image, admin=True) == {"name": "n", "owner": "someone", "k": "v"}
    public = read_v1_image(_environ(x_image_meta_is_public="True"))
    assert create_request(public, admin=False) == {"visibility": "public"}


CURRENT = {
    "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    "name": "old",
    "status": "active",
    "visibility": "public",
    "size": 10,
    "checksum": "abc",
    "os_distro": "ubuntu",
    "Mixed_Case": "x",
    "os_glance_import_task": "t",
    "tags": [],
}


def test_an_update_purges_properties_not_sent_unless_told_not_to():
    image = read_v1_image(_environ(x_image_meta_name="new", x_image_meta_property_added="1"))
    assert update_operations(image, CURRENT, admin=False) == [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/added", "value": "1"},
        {"op": "remove", "path": "/os_distro"},
        {"op": "remove", "path": "/Mixed_Case"},
    ]
    kept = read_v1_image(
        _environ(x_image_meta_property_os_distro="debian", x_glance_registry_purge_props="false")
    )
    assert update_operations(kept, CURRENT, admin=False) == [
        {"op": "add", "path": "/os_distro", "value": "debian"}
    ]


def test_is_public_false_makes_a_public_image_shared():
    image = read_v1_image(
        _environ(x_image_meta_is_public="0", x_glance_registry_purge_props="false")
    )
    assert update_operations(image, CURRENT, admin=False) == [
        {"op": "replace", "path": "/visibility", "value": "shared"}
    ]
    private = {**CURRENT, "visibility": "private"}
    assert update_operations(image, private, admin=False) == []


@pytest.mark.parametrize(
    "headers, admin, message",
    [
        ({"x_image_meta_status": "queued"}, True, "Forbidden to modify 'status' of image."),
        ({"x_image_meta_size": "11"}, False, "Forbidden to modify 'size' of active image."),
        ({"x_image_meta_checksum": "def"}, False, "Forbidden to modify 'checksum' of active"),
    ],
)
def test_immutable_fields_are_403s(headers, admin, message):
    image = read_v1_image(_environ(**headers))
    with pytest.raises(V1Invalid) as refused:
        update_operations(image, CURRENT, admin=admin)
    assert refused.value.status == 403 and message in str(refused.value)


def test_an_admin_may_set_the_size_and_checksum_of_an_active_image_as_in_v1():
    image = read_v1_image(_environ(x_image_meta_size="10", x_glance_registry_purge_props="no"))
    assert update_operations(image, CURRENT, admin=True) == []


def test_membership_lists():
    body = {"memberships": [{"member_id": "p1", "can_share": True}, {"member_id": "p2"}]}
    assert v1_membership_list(body) == ["p1", "p2"]
    for bad in ({}, {"memberships": [{}]}, [], {"memberships": "p1"}):
        with pytest.raises(V1Invalid):
            v1_membership_list(bad)


def test_a_v2_image_renders_as_the_v1_image_the_mirror_would_make():
    v2_image = {
        "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "name": "made",
        "status": "active",
        "visibility": "shared",
        "protected": False,
        "os_hidden": False,
        "owner": "p1",
        "size": 5,
        "virtual_size": None,
        "checksum": "5d41402abc4b2a76b9719d911017c592",
        "os_hash_algo": "sha512",
        "disk_format": "raw",
        "container_format": "bare",
        "min_ram": 0,
        "min_disk": None,
        "created_at": "2026-12-06T21:00:00Z",
        "updated_at": "2026-12-06T21:00:01Z",
        "tags": [],
        "self": "/v2/images/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "os_distro": "ubuntu",
        "hw_cpu_cores": 2,
    }
    assert ImageSchema().dump(v1_record(v2_image)) == {
        "status": "active",
        "deleted_at": None,
        "name": "made",
        "deleted": False,
        "container_format": "bare",
        "created_at": "2026-12-06T21:00:00.000000",
        "disk_format": "raw",
        "updated_at": "2026-12-06T21:00:01.000000",
        "min_disk": 0,
        "protected": False,
        "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "min_ram": 0,
        "checksum": "5d41402abc4b2a76b9719d911017c592",
        "owner": "p1",
        "is_public": False,
        "virtual_size": None,
        "properties": {"os_distro": "ubuntu", "hw_cpu_cores": "2"},
        "size": 5,
    }
