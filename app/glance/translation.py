"""Glance v1's write headers, read as v1 read them, and the Glance v2 calls that carry them out.

Pure functions: no network, no database (docs/api.md, "Writes", maps each
field). v1 took an image's metadata as `x-image-meta-<field>` and
`x-image-meta-property-<key>` headers: a header name reaches WSGI with `-`
and `_` alike (HTTP_X_IMAGE_META_DISK_FORMAT), so v1 lower-cased keys and
could not tell them apart either; python-glanceclient %-encodes values.
"""

import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from app.images.timestamps import parse_iso8601

META = "HTTP_X_IMAGE_META_"
PROPERTY = META + "PROPERTY_"
# The x-image-meta-<field> headers v1 accepted (Queens' IMAGE_META_HEADERS);
# any other is a 400, as it was.
FIELDS = frozenset(
    {
        "name",
        "id",
        "status",
        "location",
        "size",
        "virtual_size",
        "disk_format",
        "container_format",
        "checksum",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
        "is_public",
        "min_ram",
        "min_disk",
        "owner",
        "store",
        "protected",
        "copy_from",
        "uri",
    }
)
# Fields v2 keeps as they are; the rest are mapped, checked, or not carried (docs/api.md).
PLAIN = ("name", "disk_format", "container_format", "min_ram", "min_disk", "protected")
INTEGERS = ("size", "min_ram", "min_disk")
BOOLEANS = ("is_public", "protected")
# Names v2 reserves for its own attributes: a v1 property of that name would
# change the attribute itself, so it is refused, as v2 refuses it.
RESERVED = frozenset(
    {
        "id",
        "name",
        "owner",
        "visibility",
        "protected",
        "min_ram",
        "min_disk",
        "tags",
        "os_hidden",
        "disk_format",
        "container_format",
        "status",
        "size",
        "virtual_size",
        "checksum",
        "created_at",
        "updated_at",
        "direct_url",
        "self",
        "file",
        "schema",
        "locations",
        "location",
        "deleted",
        "deleted_at",
        "os_hash_algo",
        "os_hash_value",
        "stores",
    }
)
# The v1 fields, besides PLAIN, that v2 shows under the same name and with the same value.
SHOWN_AS_IS = ("status", "size", "virtual_size", "checksum", "owner")
AMI_FORMATS = ("aki", "ari", "ami")
TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")


class V1Invalid(ValueError):
    """A v1 request Glance v1 refused: its status (400, 403) and v1's message."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@dataclass
class V1Image:
    """What a v1 write asked of an image: the fields given, the properties, the data's source."""

    fields: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)
    location: str | None = None
    copy_from: str | None = None
    # x-glance-registry-purge-props: properties not sent are removed (the default).
    purge: bool = True


def read_v1_image(environ):
    """The V1Image the x-image-meta-* headers of a WSGI request ask for.

    :raises V1Invalid: a header v1 did not know, or a value it refused (v1's messages).
    """
    image = V1Image()
    for name, raw in environ.items():
        if not name.startswith(META) or raw is None:
            continue
        value = _decoded(raw)
        if name.startswith(PROPERTY):
            image.properties[name[len(PROPERTY) :].lower()] = value
            continue
        key = name[len(META) :].lower()
        if key not in FIELDS:
            raise V1Invalid(f"Bad header: x-image-meta-{key.replace('_', '-')}")
        image.fields[key] = value
    image.location = image.fields.pop("location", None) or None
    image.copy_from = _decoded(environ.get("HTTP_X_GLANCE_API_COPY_FROM") or "") or None
    purge = environ.get("HTTP_X_GLANCE_REGISTRY_PURGE_PROPS")
    image.purge = purge is None or purge.strip().lower() in TRUE_WORDS
    _check(image)
    return image


def _decoded(raw):
    """A header value as text: WSGI's latin-1 of its bytes, UTF-8 then %-decoded."""
    text = raw.encode("latin-1").decode("utf-8", "replace")
    return unquote(text).strip()


def _check(image):
    fields = image.fields
    for key in INTEGERS:
        if key in fields:
            fields[key] = _integer(key, fields[key])
    for key in BOOLEANS:
        if key in fields:
            fields[key] = fields[key].lower() in TRUE_WORDS
    if len(fields.get("name") or "") > 255:
        raise V1Invalid(f"Image name too long: {len(fields['name'])}")
    if len(fields.get("checksum") or "") > 32:
        raise V1Invalid(f"Invalid checksum '{fields['checksum']}': can't exceed 32 characters")
    if "id" in fields:
        try:
            fields["id"] = str(uuid.UUID(fields["id"]))
        except ValueError:
            raise V1Invalid(f"Invalid image id format: {fields['id'][:100]}") from None
    _fill_ami_formats(fields)
    for key in image.properties:
        if key in RESERVED or key.startswith("os_glance"):
            raise V1Invalid(f"Attribute '{key}' is reserved.", status=403)


def _integer(key, text):
    try:
        number = int(text)
    except ValueError:
        raise V1Invalid(
            f"Invalid value '{text}' for parameter '{key}': Cannot convert image {key} "
            f"'{text}' to an integer."
        ) from None
    if number < 0:
        raise V1Invalid(
            f"Invalid value '{text}' for parameter '{key}': Cannot be a negative value."
        )
    return number


def _fill_ami_formats(fields):
    """v1's rule: an aki/ari/ami disk or container format goes for both, and both must match."""
    disk, container = fields.get("disk_format"), fields.get("container_format")
    if disk in AMI_FORMATS and not container:
        fields["container_format"] = disk
    elif container in AMI_FORMATS and not disk:
        fields["disk_format"] = container
    elif (disk in AMI_FORMATS or container in AMI_FORMATS) and disk != container:
        raise V1Invalid(
            "Invalid mix of disk and container formats. When setting a disk or container "
            "format to one of 'aki', 'ari', or 'ami', the container and disk formats must match."
        )


def create_request(image, *, admin):
    """The body of POST /v2/images for a v1 create.

    `is_public` false (or not given) leaves v2's default, `shared`, as v1
    stored it; `owner` counts for admins only, as in v1 (others' is ignored).
    """
    fields = image.fields
    body = {key: fields[key] for key in PLAIN if key in fields}
    if fields.get("id"):
        body["id"] = fields["id"]
    if fields.get("is_public"):
        body["visibility"] = "public"
    if admin and fields.get("owner"):
        body["owner"] = fields["owner"]
    return {**body, **image.properties}


def update_operations(image, current, *, admin):
    """The JSON-patch operations of a v1 update of `current` (Glance v2's image).

    :raises V1Invalid: a change v1 refused (status, id; size or checksum of an
        active image, unless an admin).
    """
    fields = image.fields
    _refuse_immutable(fields, current, admin)
    changes = {key: fields[key] for key in PLAIN if key in fields}
    if "is_public" in fields:
        if fields["is_public"]:
            changes["visibility"] = "public"
        elif current.get("visibility") == "public":
            changes["visibility"] = "shared"
    if admin and fields.get("owner"):
        changes["owner"] = fields["owner"]
    operations = [
        {"op": "replace", "path": f"/{key}", "value": value}
        for key, value in changes.items()
        if current.get(key) != value
    ]
    operations += [
        {"op": "add", "path": f"/{_pointer(key)}", "value": value}
        for key, value in image.properties.items()
        if current.get(key) != value
    ]
    if image.purge:
        kept = set(image.properties)
        operations += [
            {"op": "remove", "path": f"/{_pointer(key)}"}
            for key in custom_properties(current)
            if key.lower() not in kept and not key.startswith("os_glance")
        ]
    return operations


def custom_properties(v2_image):
    """The names of a v2 image's custom properties (the keys that are no base attribute)."""
    return [key for key in v2_image if key not in RESERVED]


def _refuse_immutable(fields, current, admin):
    for key in ("status", "id"):
        if key in fields and fields[key] != current.get(key):
            raise V1Invalid(f"Forbidden to modify '{key}' of image.", status=403)
    if not admin and current.get("status") in ("active", "deactivated"):
        for key in ("size", "checksum"):
            if key in fields and fields[key] != current.get(key):
                raise V1Invalid(f"Forbidden to modify '{key}' of active image.", status=403)


def v1_record(v2_image):
    """A Glance v2 image as the catalogue's record of it, as the mirror would make it
    (for app/images/schemas.py ImageSchema): what a write answers when the
    catalogue could not take its result at once."""
    return {
        **{key: v2_image.get(key) for key in (*SHOWN_AS_IS, *PLAIN)},
        "id": uuid.UUID(v2_image["id"]),
        "is_public": v2_image.get("visibility") == "public",
        "deleted": False,
        "deleted_at": None,
        "min_ram": v2_image.get("min_ram") or 0,
        "min_disk": v2_image.get("min_disk") or 0,
        "created_at": parse_iso8601(v2_image["created_at"]),
        "updated_at": parse_iso8601(v2_image["updated_at"]),
        "properties": {key: str(v2_image[key]) for key in custom_properties(v2_image)},
    }


def _pointer(key):
    """`key` as a JSON pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


def v1_membership_list(body):
    """The members a v1 PUT /v1/images/{id}/members body names, once each, in its order
    (their can_share is not kept: v2 has none).

    :raises V1Invalid: not {"memberships": [{"member_id": ..., "can_share": ...}, ...]}.
    """
    if not isinstance(body, dict) or not isinstance(body.get("memberships"), list):
        raise V1Invalid("Invalid membership association: 'memberships'")
    members = {}
    for membership in body["memberships"]:
        if not isinstance(membership, dict) or not membership.get("member_id"):
            raise V1Invalid("Invalid membership association: 'member_id'")
        members[str(membership["member_id"])] = None
    return list(members)
