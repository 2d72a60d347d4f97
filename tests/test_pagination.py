import datetime as dt
import uuid

import pytest

from helpers import BASE_TIME, error_message, image_ids


def _walk(list_images, query, limit):
    seen, marker = [], None
    while True:
        page_query = f"{query}&limit={limit}" + (f"&marker={marker}" if marker else "")
        page = image_ids(list_images(page_query))
        seen += page
        if len(page) < limit:
            return seen
        marker = page[-1]


def test_marker_paging_visits_every_image_once_in_default_order(list_images, make_image):
    created = []
    for number in range(300):
        # Groups of three share a created_at, so the id tie-breaker matters.
        moment = BASE_TIME + dt.timedelta(seconds=number // 3)
        created.append((moment, make_image(created_at=moment)))
    expected = [
        image_id
        for _, image_id in sorted(created, key=lambda pair: (pair[0], pair[1]), reverse=True)
    ]
    assert _walk(list_images, "", limit=7) == expected


def test_paging_with_filters_keeps_to_the_filter(list_images, make_image):
    qcow2 = {make_image(disk_format="qcow2") for _ in range(40)}
    for _ in range(40):
        make_image(disk_format="raw")
    walked = _walk(list_images, "disk_format=qcow2", limit=9)
    assert len(walked) == len(set(walked)) == 40
    assert set(walked) == qcow2


def test_marker_need_not_match_the_filters(list_images, make_image):
    older = make_image(disk_format="raw")
    marker = make_image(disk_format="qcow2")
    make_image(disk_format="raw")
    assert image_ids(list_images(f"disk_format=raw&marker={marker}")) == [older]


@pytest.mark.parametrize("marker", ["not-a-uuid", "", "1234"])
def test_malformed_marker_is_400(list_images, marker):
    assert "marker" in error_message(list_images(f"marker={marker}"), 400)


def test_unknown_marker_is_400(list_images, make_image):
    make_image()
    message = error_message(list_images(f"marker={uuid.uuid4()}"), 400)
    assert "Invalid marker" in message


def test_marker_of_an_image_the_caller_cannot_see_is_400(list_images, make_image):
    hidden = make_image(is_public=False, owner="someone-else")
    error_message(list_images(f"marker={hidden}"), 400)


@pytest.mark.parametrize("kind", ["unknown", "invisible", "deleted"])
def test_limit_zero_still_checks_the_marker(list_images, make_image, kind):
    marker = {
        "unknown": lambda: str(uuid.uuid4()),
        "invisible": lambda: make_image(is_public=False, owner="someone-else"),
        "deleted": lambda: make_image(status="deleted", deleted=True, deleted_at=BASE_TIME),
    }[kind]()
    assert "Invalid marker" in error_message(list_images(f"limit=0&marker={marker}"), 400)


def test_limit_zero_with_a_good_marker_is_an_empty_page(list_images, make_image):
    marker = make_image()
    assert list_images(f"limit=0&marker={marker}").get_json() == {"images": []}


def test_an_impossible_filter_still_checks_the_marker(list_images):
    message = error_message(list_images(f"size_min={2**64}&marker={uuid.uuid4()}"), 400)
    assert "Invalid marker" in message
