"""The compiled dumper returns exactly what ImageSchema(many=True).dump returns; the bound on
an image's metadata headers is never below what they take."""

import datetime as dt
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump

from app.images.headers import meta_headers_bytes, meta_headers_bytes_at_most
from app.images.repository import LISTING_COLUMNS
from app.images.schemas import BRIEF_FIELDS, ImageSchema
from app.images.serializer import UncompilableSchema, compile_dumper

BIGINT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)
TEXT = st.text(max_size=40)
ZONES = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=12, minutes=30))]
)
TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=ZONES
) | st.sampled_from(
    [dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)]
)
ROWS = st.lists(
    st.tuples(
        st.uuids().map(str),  # id
        st.none() | TEXT,  # name
        st.none() | BIGINT,  # size
        st.none() | BIGINT,  # virtual_size
        TEXT,  # status
        st.none() | TEXT,  # disk_format
        st.none() | TEXT,  # container_format
        st.none() | TEXT,  # checksum
        TIMESTAMPS,  # created_at
        st.none() | TIMESTAMPS,  # updated_at
        st.none() | TIMESTAMPS,  # deleted_at
        st.booleans(),  # deleted
        st.booleans(),  # is_public
        st.booleans(),  # protected
        INT,  # min_ram
        INT,  # min_disk
        st.none() | TEXT,  # owner
        st.dictionaries(TEXT, TEXT, max_size=3)
        | st.dictionaries(TEXT, TEXT, min_size=50, max_size=200),  # properties
    ),
    max_size=30,
)


def _both(schema, columns, rows):
    """(compiled result, marshmallow result), each as ordered JSON or the exception type."""
    dicts = [dict(zip(columns, row, strict=False)) for row in rows]
    results = []
    for dump in (compile_dumper(schema, columns), lambda _: schema.dump(dicts)):
        try:
            results.append(json.dumps(dump(rows)))
        except Exception as error:  # noqa: BLE001 - both must fail alike
            results.append(type(error))
    return results


def test_the_row_columns_are_what_the_schema_reads():
    assert set(LISTING_COLUMNS) == set(ImageSchema().fields)


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
def test_compiled_dump_equals_marshmallow_dump(rows):
    compiled, reference = _both(ImageSchema(many=True), LISTING_COLUMNS, rows)
    assert compiled == reference


@settings(max_examples=100, deadline=None)
@given(rows=ROWS)
def test_compiled_brief_dump_equals_marshmallow_dump(rows):
    brief = ImageSchema(many=True, only=BRIEF_FIELDS)
    compiled, reference = _both(brief, LISTING_COLUMNS[:-1], [row[:-1] for row in rows])
    assert compiled == reference


def test_values_outside_what_the_database_returns_are_dumped_alike():
    row = (
        uuid.uuid4(),
        b"bytes-name",
        True,
        3.7,
        "active",
        None,
        None,
        None,
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        None,
        None,
        0,
        1,
        "",
        5,
        False,
        7,
        {"k": None},
    )
    compiled, reference = _both(ImageSchema(many=True), LISTING_COLUMNS, [row])
    assert compiled == reference


class WithFloat(Schema):
    ratio = fields.Float()


class WithHook(Schema):
    name = fields.Str()

    @post_dump
    def shout(self, data, **kwargs):
        return {key: value.upper() for key, value in data.items()}


class AsString(Schema):
    size = fields.Int(as_string=True)


class Elsewhere(Schema):
    name = fields.Str(attribute="title")


@pytest.mark.parametrize(
    "schema, columns, reason",
    [
        (WithFloat(many=True), ("ratio",), "is a Float"),
        (WithHook(many=True), ("name",), "dump hooks"),
        (AsString(many=True), ("size",), "as_string"),
        (Elsewhere(many=True), ("name",), "reads 'title'"),
    ],
)
def test_what_cannot_be_compiled_stops_start_up(schema, columns, reason):
    with pytest.raises(UncompilableSchema, match=reason):
        compile_dumper(schema, columns)


# Long keys and values of the characters that take the most bytes in a header.
WIDE_TEXT = st.text(alphabet="a\x01é😀 %", min_size=100, max_size=400)


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, wide=st.dictionaries(WIDE_TEXT, WIDE_TEXT, max_size=5))
def test_the_header_bound_is_never_below_the_headers(rows, wide):
    for row in rows:
        record = dict(zip(LISTING_COLUMNS, row, strict=True))
        record["properties"] = {**record["properties"], **wide}
        size = meta_headers_bytes(ImageSchema().dump(record))
        assert meta_headers_bytes_at_most(record) >= size


@pytest.mark.parametrize("key, value", [("😀" * 5000, ""), ("a", "\x01" * 20000)])
def test_the_header_bound_holds_for_the_widest_characters(key, value):
    record = {
        **dict.fromkeys(LISTING_COLUMNS),
        "id": uuid.uuid4(),
        "status": "active",
        "created_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        **dict.fromkeys(("deleted", "is_public", "protected"), False),
        **dict.fromkeys(("min_ram", "min_disk"), 0),
        "properties": {key: value},
    }
    assert meta_headers_bytes_at_most(record) >= meta_headers_bytes(ImageSchema().dump(record))
