import datetime as dt

import pytest

from helpers import BASE_TIME, error_message, image_ids


def test_name_filter_is_exact_and_case_sensitive(list_images, make_image):
    cirros = make_image(name="cirros")
    make_image(name="Cirros")
    make_image(name="cirros-0.6")
    assert image_ids(list_images("name=cirros")) == [cirros]


@pytest.mark.parametrize("field", ["status", "container_format", "disk_format"])
def test_string_filters_match_exactly(list_images, make_image, field):
    values = {
        "status": ("active", "queued"),
        "container_format": ("bare", "ovf"),
        "disk_format": ("qcow2", "raw"),
    }[field]
    wanted = make_image(**{field: values[1]})
    make_image(**{field: values[0]})
    assert image_ids(list_images(f"{field}={values[1]}")) == [wanted]


def test_unknown_filter_value_gives_empty_list(list_images, make_image):
    make_image()
    response = list_images("disk_format=nonsense")
    assert response.status_code == 200
    assert response.get_json() == {"images": []}


def test_size_bounds_are_inclusive_and_skip_images_without_size(list_images, make_image):
    small = make_image(size=100)
    middle = make_image(size=200)
    large = make_image(size=300)
    make_image(size=None, status="queued")
    assert set(image_ids(list_images("size_min=200"))) == {middle, large}
    assert set(image_ids(list_images("size_max=200"))) == {small, middle}
    assert image_ids(list_images("size_min=200&size_max=200")) == [middle]
    assert image_ids(list_images("size_min=201&size_max=299")) == []


def test_size_min_above_size_max_gives_empty_list(list_images, make_image):
    make_image(size=150)
    assert image_ids(list_images("size_min=200&size_max=100")) == []


@pytest.mark.parametrize("parameter", ["size_min", "size_max"])
@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "1e3", "-9223372036854775809"])
def test_bad_size_bound_is_400_naming_it(list_images, parameter, value):
    message = error_message(list_images(f"{parameter}={value}"), 400)
    assert f"Bad value passed to filter {parameter} got {value}" in message


def test_deleted_and_killed_images_are_hidden_by_default(list_images, make_image):
    active = make_image()
    make_image(status="killed")
    make_image(status="deleted", deleted=True, deleted_at=BASE_TIME)
    make_image(status="pending_delete", deleted=True, deleted_at=BASE_TIME)
    assert image_ids(list_images()) == [active]
    assert image_ids(list_images("status=killed")) == []


def test_changes_since_is_strict_and_includes_deleted_and_killed(list_images, make_image):
    moment = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    make_image(updated_at=moment)
    after = make_image(updated_at=moment + dt.timedelta(microseconds=1))
    killed = make_image(status="killed", updated_at=moment + dt.timedelta(hours=1))
    deleted = make_image(
        status="deleted", deleted=True, deleted_at=moment, updated_at=moment + dt.timedelta(hours=2)
    )
    make_image(updated_at=moment - dt.timedelta(days=1))
    found = image_ids(list_images("changes-since=2025-03-01T12:00:00"))
    assert set(found) == {after, killed, deleted}


@pytest.mark.parametrize(
    "value, expected_count",
    [
        ("2025-03-01T13:00:00%2B01:00", 2),  # = 12:00 UTC
        ("2025-03-01T11:00:00-01:00", 2),
        ("2025-03-01T12:00:00Z", 2),
        ("2025-03-01T12:30:00%2B0000", 1),
        ("2025-03-01T1230Z", 1),
        ("20250301T120001,5Z", 1),
        ("2025-03-01", 3),
        ("20250301", 3),
    ],
)
def test_changes_since_accepts_iso8601_forms_and_zones(
    list_images, make_image, value, expected_count
):
    noon = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    make_image(updated_at=noon - dt.timedelta(hours=1))
    make_image(updated_at=noon + dt.timedelta(seconds=1))
    make_image(updated_at=noon + dt.timedelta(hours=1))
    assert len(image_ids(list_images(f"changes-since={value}"))) == expected_count


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "201605",
        "2016-13-01",
        "2016-02-30",
        "2016-05-22t06:00",
        "2016-05-22 ",
        "2016-05-22T06:04:20+01:00x",
        "2016-05-22T24:00",
        "2016-05-22T06:04:20 01:00",
    ],
)
def test_bad_changes_since_is_400(list_images, value):
    message = error_message(list_images(f"changes-since={value}"), 400)
    assert "changes-since" in message
    assert "Unrecognized changes-since value" in message


def test_unknown_parameters_are_ignored(list_images, make_image):
    image = make_image()
    assert image_ids(list_images("owner=nobody&deleted=true&visibility=private")) == [image]


def test_repeated_parameter_last_value_wins(list_images, make_image):
    make_image(name="first")
    second = make_image(name="second")
    assert image_ids(list_images("name=first&name=second")) == [second]


def test_limit_defaults_to_25_and_is_clamped_to_the_maximum(make_app, make_image, make_token):
    for _ in range(30):
        make_image()
    app = make_app(PAGE_LIMIT_MAX=10)
    headers = {"X-Auth-Token": make_token()}
    client = app.test_client()
    assert len(image_ids(client.get("/v1.1/images/detail?limit=50", headers=headers))) == 10
    assert len(image_ids(client.get("/v1.1/images/detail?limit=3", headers=headers))) == 3


def test_page_limit_default_is_honoured(make_app, make_image, make_token):
    for _ in range(12):
        make_image()
    client = make_app(PAGE_LIMIT_DEFAULT=7).test_client()
    response = client.get("/v1.1/images/detail", headers={"X-Auth-Token": make_token()})
    assert len(image_ids(response)) == 7


def test_default_limit_is_25(list_images, make_image):
    for _ in range(30):
        make_image()
    assert len(image_ids(list_images())) == 25


def test_limit_zero_gives_empty_list(list_images, make_image):
    make_image()
    response = list_images("limit=0")
    assert response.get_json() == {"images": []}


@pytest.mark.parametrize("value", ["-1", "abc", "", "2.5"])
def test_bad_limit_is_400(list_images, value):
    assert f"limit got {value}" in error_message(list_images(f"limit={value}"), 400)


def test_nul_bytes_in_a_filter_give_400(list_images):
    message = error_message(list_images("name=a%00b"), 400)
    assert "name" in message


BEYOND_BIGINT = str(2**63)
HUGE = "9" * 400


@pytest.mark.parametrize("value", [BEYOND_BIGINT, HUGE])
def test_size_max_beyond_every_size_matches_every_sized_image(list_images, make_image, value):
    sized = {make_image(size=0), make_image(size=2**63 - 1)}
    make_image(size=None, status="queued")
    assert set(image_ids(list_images(f"size_max={value}"))) == sized


@pytest.mark.parametrize("name", ["size_min", "min_ram", "min_disk"])
@pytest.mark.parametrize("value", [str(2**31), BEYOND_BIGINT, HUGE])
def test_lower_bounds_and_equalities_beyond_every_value_match_nothing(
    list_images, make_image, name, value
):
    make_image(size=2**63 - 1, min_ram=2**31 - 1, min_disk=2**31 - 1)
    expected = 1 if name == "size_min" and value == str(2**31) else 0
    assert len(image_ids(list_images(f"{name}={value}"))) == expected


@pytest.mark.parametrize("value", [BEYOND_BIGINT, HUGE])
def test_limit_beyond_bigint_is_clamped_like_any_large_limit(list_images, make_image, value):
    for _ in range(30):
        make_image()
    assert len(image_ids(list_images(f"limit={value}"))) == 30
