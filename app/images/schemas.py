"""The listing's query parameters (loaded) and image rows (dumped), as Glance v1 named them."""

import csv

from flask import current_app
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
)
from werkzeug.exceptions import BadRequest

from app.images.query import (
    BIGINT_MAX,
    SORT_DIRS,
    SORT_KEYS,
    Filters,
    ListingQuery,
    Page,
    Sort,
)
from app.images.timestamps import format_timestamp, parse_iso8601

PROPERTY_PREFIX = "property-"
# Parameters that are not filters; Glance named the others "filter <name>".
PAGING_PARAMS = {"limit", "marker", "sort_key", "sort_dir"}
ECHO_LIMIT = 100


class MatchValues(fields.Field):
    """`x`, `eq:x` or `in:a,b,"c,d"`, loaded as the list of values to match.

    Any other `op:` prefix is part of the value (Glance answered those with 500).
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if value.startswith("in:"):
            return tuple(_split_quoted(value[3:]))
        if value.startswith("eq:"):
            return (value[3:],)
        return (value,)


def _split_quoted(text):
    # csv reads "" as no fields; `in:` is one empty value, as `in:a,` ends with one.
    try:
        return next(csv.reader([text], strict=True)) or [""]
    except csv.Error as error:
        raise ValidationError('unbalanced double quotes in an "in:" list') from error


class Choice(fields.Field):
    """A case-insensitive word mapped to a value: {"true": True, ...}."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.choices[value.lower()]
        except KeyError:
            raise ValidationError(f"accepted values are {', '.join(self.choices)}") from None


class Timestamp(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_iso8601(value)
        except ValueError:
            raise ValidationError("Unrecognized changes-since value") from None


def _non_negative():
    # Any size: a value beyond a column's range is still a valid filter
    # (bound_values below), it just never reaches PostgreSQL.
    return fields.Integer(
        strict=False,
        validate=validate.Range(min=0, error="must be an integer of 0 or more"),
        error_messages={"invalid": "must be an integer"},
    )


BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


class ImageQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = MatchValues()
    status = MatchValues()
    container_format = MatchValues()
    disk_format = MatchValues()
    size_min = _non_negative()
    size_max = _non_negative()
    min_ram = _non_negative()
    min_disk = _non_negative()
    changes_since = Timestamp(data_key="changes-since")
    protected = Choice(BOOLEAN)
    # Absent and "true" both mean "act as a member of your project" (admins only).
    is_public = Choice({**BOOLEAN, "none": None}, load_default=True)
    properties = fields.Dict(keys=fields.Str(), values=fields.Str(), load_default=dict)
    sort_key = fields.Str(
        load_default="created_at",
        validate=validate.OneOf(SORT_KEYS, error="Acceptable values: " + ", ".join(SORT_KEYS)),
    )
    sort_dir = fields.Str(
        load_default="desc",
        validate=validate.OneOf(SORT_DIRS, error="Acceptable values: asc, desc"),
    )
    limit = _non_negative()
    marker = fields.UUID(error_messages={"invalid_uuid": "not an image id"})

    @pre_load
    def gather_properties(self, params, **kwargs):
        """Move `property-<key>` parameters into one `properties` dict; refuse NUL bytes."""
        bad = {
            key: ["NUL characters are not allowed"]
            for key, value in params.items()
            if "\x00" in key or "\x00" in value
        }
        if bad:
            raise ValidationError(bad)
        loaded = {
            key: value for key, value in params.items() if not key.startswith(PROPERTY_PREFIX)
        }
        loaded["properties"] = {
            key[len(PROPERTY_PREFIX) :]: value
            for key, value in params.items()
            if key.startswith(PROPERTY_PREFIX)
        }
        return loaded

    @validates("properties")
    def few_enough_property_filters(self, properties, **kwargs):
        cap = current_app.config["PROPERTY_FILTERS_MAX"]
        if len(properties) > cap:
            raise ValidationError(f"at most {cap} property-<key> filters are accepted")

    @post_load
    def make_query(self, values, **kwargs):
        """The ListingQuery: `limit` clamped, `size_max` cut to what a size can be."""
        config = current_app.config
        limit = values.pop("limit", config["PAGE_LIMIT_DEFAULT"])
        page = Page(limit=min(limit, config["PAGE_LIMIT_MAX"]), marker=values.pop("marker", None))
        sort = Sort(key=values.pop("sort_key"), descending=values.pop("sort_dir") == "desc")
        is_public = values.pop("is_public")
        if values.get("size_max", 0) > BIGINT_MAX:
            values["size_max"] = BIGINT_MAX  # every stored size is below it
        values["properties"] = tuple(values["properties"].items())
        return ListingQuery(
            page=page,
            filters=Filters(**values),
            sort=sort,
            is_public=is_public,
            include_hidden=config["LIST_HIDDEN_IMAGES"],
        )

    def handle_error(self, error, data, **kwargs):
        raise BadRequest(
            description=" ".join(
                _describe(name, data.get(name), messages)
                for name, messages in sorted(error.messages.items())
            )
        )


def _describe(name, value, messages):
    if name == "properties":
        return f"Bad value passed to filters {PROPERTY_PREFIX}*: {'; '.join(messages)}."
    if isinstance(value, str) and len(value) > ECHO_LIMIT:
        value = value[:ECHO_LIMIT] + "..."
    kind = "" if name in PAGING_PARAMS else "filter "
    return f"Bad value passed to {kind}{name} got {value}: {'; '.join(messages)}."


class ChangesQuerySchema(Schema):
    """GET /v1/images/changes: `since` (a cursor; none: from the start) and `limit`."""

    class Meta:
        unknown = EXCLUDE

    since = fields.Str()
    limit = _non_negative()

    @post_load
    def clamp_limit(self, values, **kwargs):
        config = current_app.config
        limit = values.get("limit", config["PAGE_LIMIT_DEFAULT"])
        return values.get("since"), min(limit, config["PAGE_LIMIT_MAX"])

    def handle_error(self, error, data, **kwargs):
        raise BadRequest(
            description=" ".join(
                _describe(name, data.get(name), messages)
                for name, messages in sorted(error.messages.items())
            )
        )


def query_params(args):
    """Flatten request.args: when a parameter repeats, the last value wins (as in WebOb)."""
    return {key: values[-1] for key, values in args.lists()}


class GlanceTimestamp(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_timestamp(value)


class ImageSchema(Schema):
    """An image as Glance v1 rendered it: 18 keys, in the order of the reference sample."""

    status = fields.Str()
    deleted_at = GlanceTimestamp()
    name = fields.Str()
    deleted = fields.Bool()
    container_format = fields.Str()
    created_at = GlanceTimestamp()
    disk_format = fields.Str()
    updated_at = GlanceTimestamp()
    min_disk = fields.Int()
    protected = fields.Bool()
    id = fields.UUID()
    min_ram = fields.Int()
    checksum = fields.Str()
    owner = fields.Str()
    is_public = fields.Bool()
    virtual_size = fields.Int()
    properties = fields.Dict(keys=fields.Str(), values=fields.Str())
    size = fields.Int()


BRIEF_FIELDS = ("id", "name", "size", "disk_format", "container_format", "checksum")


class ImageIdSchema(Schema):
    """An image id in a path: any spelling the listing's marker accepts."""

    id = fields.UUID()

    def load_id(self, text):
        """The UUID `text` spells, or None (which Glance answered with a 404)."""
        try:
            return self.load({"id": text})["id"]
        except ValidationError:
            return None


class MemberSchema(Schema):
    """A membership as Glance v1's members API showed it."""

    member_id = fields.Str(attribute="member")
    can_share = fields.Bool()


class SharedImageSchema(Schema):
    """An image shared with a project, as Glance v1's shared-images API showed it."""

    image_id = fields.Str()
    can_share = fields.Bool()


image_schema = ImageSchema()
image_id_schema = ImageIdSchema()
member_schema = MemberSchema()
shared_image_schema = SharedImageSchema()
