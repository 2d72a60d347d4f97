import datetime as dt
import random

import pytest

from app.images.schemas import SORT_KEYS
from helpers import BASE_TIME, error_message, image_ids

LOWEST = {
    "name": "",
    "container_format": "",
    "disk_format": "",
    "size": -1,
    "updated_at": dt.datetime.min.replace(tzinfo=dt.UTC),
}


def _catalogue(make_image):
    """40 images with repeated values and NULLs in every nullable sort column."""
    rng = random.Random(4)
    images = []
    for number in range(40):
        fields = {
            "name": rng.choice([None, "", "alpha", "beta", "gamma"]),
            "status": rng.choice(["active", "queued", "saving", "deactivated"]),
            "container_format": rng.choice([None, "bare", "ovf"]),
            "disk_format": rng.choice([None, "qcow2", "raw"]),
            "size": rng.choice([None, 0, 10, 20]),
            # Repeated created_at values make the id tie-breaker matter.
            "created_at": BASE_TIME + dt.timedelta(minutes=number // 4),
            "updated_at": rng.choice([None, BASE_TIME, BASE_TIME + dt.timedelta(days=1)]),
        }
        fields["id"] = make_image(**fields)
        images.append(fields)
    return images


def _expected(images, sort_key, sort_dir):
    def key(image):
        value = image[sort_key]
        if value is None:
            value = LOWEST[sort_key]
        return (str(value) if sort_key == "id" else value, image["created_at"], image["id"])

    return [image["id"] for image in sorted(images, key=key, reverse=sort_dir == "desc")]


def _walk(list_images, query, limit):
    seen, marker = [], None
    while True:
        suffix = f"&marker={marker}" if marker else ""
        page = image_ids(list_images(f"{query}&limit={limit}{suffix}"))
        seen += page
        if len(page) < limit:
            return seen
        marker = page[-1]


@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
@pytest.mark.parametrize("sort_key", SORT_KEYS)
def test_paging_in_any_order_never_skips_or_repeats(list_images, make_image, sort_key, sort_dir):
    images = _catalogue(make_image)
    expected = _expected(images, sort_key, sort_dir)
    query = f"sort_key={sort_key}&sort_dir={sort_dir}"
    assert image_ids(list_images(f"{query}&limit=40")) == expected
    assert _walk(list_images, query, limit=3) == expected


def test_default_order_is_created_at_desc(list_images, make_image):
    images = _catalogue(make_image)
    assert image_ids(list_images("limit=40")) == _expected(images, "created_at", "desc")


def test_null_name_marker_pages_like_the_lowest_name(list_images, make_image):
    nameless = make_image(name=None)
    named = make_image(name="zeta")
    assert image_ids(list_images(f"sort_key=name&sort_dir=desc&marker={nameless}")) == []
    assert image_ids(list_images(f"sort_key=name&sort_dir=asc&marker={nameless}")) == [named]


@pytest.mark.parametrize(
    "query, accepted",
    [
        ("sort_key=", "Acceptable values: name, status"),
        ("sort_key=Name", "Acceptable values"),
        ("sort_key=owner", "Acceptable values"),
        ("sort_dir=DESC", "Acceptable values: asc, desc"),
        ("sort_dir=", "Acceptable values: asc, desc"),
    ],
)
def test_bad_sort_parameters_are_400(list_images, query, accepted):
    assert accepted in error_message(list_images(query), 400)


# Written out by hand: code point order (uppercase, then lowercase, then
# accented and other scripts), with NULL and '' tied as the lowest name and the
# tie broken by created_at.
NAMES_ASCENDING = [None, "", "Alpha", "Zulu", "alpha", "zebra", "Émile", "émile", "ölfarbe", "日本"]


def test_names_sort_by_code_point_with_null_and_empty_lowest(list_images, make_image):
    ids = {}
    for number, name in enumerate(NAMES_ASCENDING):
        ids[name] = make_image(name=name, created_at=BASE_TIME + dt.timedelta(minutes=number))
    ascending = image_ids(list_images("sort_key=name&sort_dir=asc"))
    descending = image_ids(list_images("sort_key=name&sort_dir=desc"))
    assert ascending == [ids[name] for name in NAMES_ASCENDING]
    assert descending == [
        ids[name]
        for name in [
            "日本",
            "ölfarbe",
            "émile",
            "Émile",
            "zebra",
            "alpha",
            "Zulu",
            "Alpha",
            "",
            None,
        ]
    ]
    assert _walk(list_images, "sort_key=name&sort_dir=asc", limit=3) == ascending


def test_a_null_name_ties_with_the_empty_name_and_falls_to_created_at(list_images, make_image):
    empty_older = make_image(name="", created_at=BASE_TIME)
    null_newer = make_image(name=None, created_at=BASE_TIME + dt.timedelta(minutes=1))
    named = make_image(name="a", created_at=BASE_TIME - dt.timedelta(days=1))
    assert image_ids(list_images("sort_key=name&sort_dir=asc")) == [empty_older, null_newer, named]
    assert image_ids(list_images(f"sort_key=name&sort_dir=asc&marker={empty_older}")) == [
        null_newer,
        named,
    ]
