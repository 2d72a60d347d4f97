"""`images import`: JSON Lines records, validated whole before anything is written.

Valid records go to app/loading/upsert.py in one transaction: an import
either replaces the named images completely or changes nothing.
"""

import json

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.images.query import BIGINT_MAX, INT_MAX
from app.images.timestamps import parse_iso8601
from app.loading.upsert import unshowable

STATUSES = ("queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated")
ERRORS_SHOWN = 20


class ImportRejected(Exception):
    """The input holds invalid lines; nothing was written."""

    def __init__(self, errors):
        super().__init__(f"{len(errors)} invalid line(s)")
        self.errors = errors


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


# Keystone never issues an empty project id: an owner or member "" would be a
# project anyone could claim with a token of project "".
PROJECT_ID = validate.Length(
    min=1, max=255, error="must be a project id of 1 to 255 characters (an empty one is no project)"
)


class MemberRecordSchema(Schema):
    class Meta:
        unknown = RAISE

    member = Text(required=True, validate=PROJECT_ID)
    can_share = fields.Bool(load_default=False)


member_record_schema = MemberRecordSchema()


class Member(fields.Field):
    """A member: a project id, or {"member": <project id>, "can_share": <bool>}."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = {"member": value}
        if not isinstance(value, dict):
            raise ValidationError('a project id, or an object with "member" and "can_share"')
        loaded = member_record_schema.load(value)
        return loaded["member"], loaded["can_share"]


def _count(maximum):
    return fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=maximum))


def _optional(field_class, **kwargs):
    return field_class(allow_none=True, load_default=None, **kwargs)


class ImageRecordSchema(Schema):
    """One line of an import file: the 18 listing fields plus optional `members` and `hidden`.

    `members`: project ids, or {"member": ..., "can_share": ...} objects.
    """

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
    # Glance's os_hidden: left out of default listings.
    hidden = fields.Bool(load_default=False)
    min_ram = _count(INT_MAX)
    min_disk = _count(INT_MAX)
    # null (or left out) for no owner.
    owner = _optional(Text, validate=PROJECT_ID)
    properties = fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=255)), values=Text(), load_default=dict
    )
    members = fields.List(Member(), load_default=list)


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
    record["members"] = dict(record["members"])
    problem = unshowable(record)
    if problem:
        raise ValidationError(problem)
    return record


def _flatten(messages):
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return ", ".join(_flatten(message) for message in messages)
    return str(messages)
