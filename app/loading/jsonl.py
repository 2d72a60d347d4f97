"""Bulk loading of the catalogue: JSON Lines imports and synthetic catalogues.

Both paths stage rows in temporary files in COPY text format (bounded memory),
COPY them into temporary tables, then upsert by id in one transaction: a load
either replaces the named images completely or changes nothing.
"""

import contextlib
import json
import tempfile
from dataclasses import dataclass

import sqlalchemy as sa
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.images.schemas import BIGINT_MAX, INT_MAX
from app.images.timestamps import parse_iso8601
from app.models import Image

STATUSES = ("queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated")
IMAGE_COLUMNS = tuple(column.name for column in Image.__table__.columns)
ERRORS_SHOWN = 20


class ImportRejected(Exception):
    """The input holds invalid lines; nothing was written."""

    def __init__(self, errors):
        super().__init__(f"{len(errors)} invalid line(s)")
        self.errors = errors


@dataclass
class LoadSummary:
    inserted: int
    updated: int


class Text(fields.Str):
    """A string PostgreSQL can store: no NUL characters, no lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("NUL characters are not allowed")
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValidationError("not valid UTF-8 text") from None
        return text


class IsoTimestamp(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 string")
        try:
            return parse_iso8601(value)
        except ValueError:
            raise ValidationError(f"not an ISO 8601 timestamp: {value!r}") from None


def _count(maximum):
    return fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=maximum))


def _optional(field_class, **kwargs):
    return field_class(allow_none=True, load_default=None, **kwargs)


class ImageRecordSchema(Schema):
    """One line of an import file: the 18 listing fields plus optional `members`."""

    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    name = _optional(Text, validate=validate.Length(max=255))
    size = _optional(fields.Integer, strict=True, validate=validate.Range(min=0, max=BIGINT_MAX))
    virtual_size = _optional(
        fields.Integer, strict=True, validate=validate.Range(min=0, max=BIGINT_MAX)
    )
    status = fields.Str(required=True, validate=validate.OneOf(STATUSES))
    disk_format = _optional(Text, validate=validate.Length(max=20))
    container_format = _optional(Text, validate=validate.Length(max=20))
    checksum = _optional(Text, validate=validate.Length(max=32))
    created_at = IsoTimestamp(required=True)
    updated_at = _optional(IsoTimestamp)
    deleted_at = _optional(IsoTimestamp)
    deleted = fields.Bool(load_default=False)
    is_public = fields.Bool(load_default=False)
    protected = fields.Bool(load_default=False)
    min_ram = _count(INT_MAX)
    min_disk = _count(INT_MAX)
    owner = _optional(Text, validate=validate.Length(max=255))
    properties = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=255)), values=Text(), load_default=dict
    )
    members = fields.List(Text(validate=validate.Length(min=1, max=255)), load_default=list)


record_schema = ImageRecordSchema()


def parse_lines(lines):
    """Yield (line number, record) for every line of a JSON Lines input.

    :raises ImportRejected: after reading everything, if any line was invalid.
    """
    errors = []
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = _parse_line(raw)
        except ValidationError as error:
            errors.append(f"line {line_no}: {_flatten(error.messages)}")
            continue
        if not errors:
            yield line_no, record
    if errors:
        raise ImportRejected(errors)


def _parse_line(raw):
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise ValidationError(f"not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise ValidationError("expected a JSON object")
    record = record_schema.load(document)
    record["members"] = list(dict.fromkeys(record["members"]))
    return record


def _flatten(messages):
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return ", ".join(_flatten(message) for message in messages)
    return str(messages)


def load(session, numbered_records, on_staged=lambda count: None):
    """Upsert (line number, record) pairs by id in one transaction.

    :raises ImportRejected: two records share an id; nothing was written.
    """
    with _StagingFiles() as staging:
        for line_no, record in numbered_records:
            staging.add(line_no, record)
        on_staged(staging.count)
        cursor = session.connection().connection.cursor()
        _copy_into_temporary_tables(cursor, staging)
    duplicates = _duplicate_ids(cursor)
    if duplicates:
        session.rollback()
        raise ImportRejected(duplicates)
    summary = _upsert(cursor)
    # Fresh planner statistics: a bulk load can change the data's shape.
    cursor.execute("ANALYZE images; ANALYZE image_properties; ANALYZE image_members")
    session.commit()
    return summary


class _StagingFiles(contextlib.ExitStack):
    """Rows in COPY text format, kept on disk so memory stays flat."""

    def __enter__(self):
        super().__enter__()
        self.images, self.properties, self.members = (
            self.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))  # noqa: SIM115
            for _ in range(3)
        )
        self.count = 0
        return self

    def add(self, line_no, record):
        self.count += 1
        image_id = record["id"]
        self.images.write(_copy_row([record[name] for name in IMAGE_COLUMNS] + [line_no]))
        for name, value in record["properties"].items():
            self.properties.write(_copy_row((image_id, name, value)))
        for member in record["members"]:
            self.members.write(_copy_row((image_id, member)))


def _copy_row(values):
    return "\t".join(map(_copy_value, values)) + "\n"


def _copy_value(value):
    if value is None:
        return r"\N"
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _copy_into_temporary_tables(cursor, staging):
    cursor.execute(
        # The service's statement timeout protects requests, not bulk loads.
        "SET LOCAL statement_timeout = 0;"
        "CREATE TEMP TABLE import_images (LIKE images, line_no integer) ON COMMIT DROP;"
        "CREATE TEMP TABLE import_properties (LIKE image_properties) ON COMMIT DROP;"
        "CREATE TEMP TABLE import_members (LIKE image_members) ON COMMIT DROP;"
    )
    for table, staged in (
        ("import_images", staging.images),
        ("import_properties", staging.properties),
        ("import_members", staging.members),
    ):
        staged.seek(0)
        cursor.copy_expert(f"COPY {table} FROM STDIN", staged, size=1 << 20)


def _duplicate_ids(cursor):
    cursor.execute(
        "SELECT id, array_agg(line_no ORDER BY line_no) FROM import_images"
        " GROUP BY id HAVING count(*) > 1 ORDER BY min(line_no)"
    )
    return [
        f"line {lines[1]}: id {image_id} already appears on line {lines[0]}"
        for image_id, lines in cursor.fetchall()
    ]


def _upsert(cursor):
    columns = ", ".join(IMAGE_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in IMAGE_COLUMNS if name != "id")
    cursor.execute("SELECT count(*) FROM import_images JOIN images USING (id)")
    (updated,) = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM import_images")
    (total,) = cursor.fetchone()
    cursor.execute(
        "DELETE FROM image_properties WHERE image_id IN (SELECT id FROM import_images);"
        "DELETE FROM image_members WHERE image_id IN (SELECT id FROM import_images);"
        # In created_at order, most index insertions land next to the previous
        # one: every images index but the id and owner ones has created_at
        # first or right after a low-cardinality sort key.
        f"INSERT INTO images ({columns}) SELECT {columns} FROM import_images"
        f" ORDER BY created_at, id ON CONFLICT (id) DO UPDATE SET {updates};"
        "INSERT INTO image_properties SELECT * FROM import_properties ORDER BY image_id;"
        "INSERT INTO image_members SELECT * FROM import_members ORDER BY image_id;"
    )
    return LoadSummary(inserted=total - updated, updated=updated)


def is_empty(session):
    return session.execute(sa.select(Image.id).limit(1)).first() is None
