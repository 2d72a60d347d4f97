"""An image as Glance v1's HEAD /v1/images/{id} sent it: one x-image-meta-* header per field.

From the image as ImageSchema dumps it (the one definition of an image):
each field not null as `X-Image-Meta-<field>` (booleans `True`/`False`,
timestamps as in the listing), each custom property as
`X-Image-Meta-Property-<key, lower-cased>`, and the checksum as `Etag`.
Names are capitalised per dash-separated word, as Glance's eventlet server
sent them (clients compare them case-blind).

A header carries bytes: a value that is not ASCII goes as its UTF-8 bytes,
as Glance v1 on Python 2 sent it. Control characters, which would end the
header, go as %XX, as do the bytes of a property key that a header name
cannot hold (docs/api.md).
"""

import re
import string

PREFIX = "x-image-meta-"
# The most an image's metadata headers may take in all (each `name: value` and
# its line end): what the shipped nginx site and HAProxy configuration read
# from the service in one answer (app/serving). Loads refuse a larger image.
META_HEADERS_MAX_BYTES = 65536
# What a header name may hold (RFC 9110 token), but % (our escape).
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "!#$&'*+-.^_`|~")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def image_meta_headers(image):
    """[(name, value)] of `image`, a dict as ImageSchema dumps it."""
    headers = [
        (_name(PREFIX + field), _value(value))
        for field, value in image.items()
        if field != "properties" and value is not None
    ]
    # Glance lower-cased property keys; of two that differ only in case, the last wins.
    properties = {}
    for key, value in sorted(image["properties"].items()):
        properties[key.lower()] = value
    headers += [
        (_name(f"{PREFIX}property-{_escaped_name(key)}"), _value(value))
        for key, value in properties.items()
    ]
    if image["checksum"] is not None:
        headers.append(("Etag", _value(image["checksum"])))
    return headers


def _name(name):
    return "-".join(word.capitalize() for word in name.split("-"))


def _escaped_name(key):
    # Lower-case hex: header names are compared case-blind, and so written.
    return "".join(
        character if character in _NAME_CHARACTERS else _percent(character).lower()
        for character in key
    )


def _value(value):
    if isinstance(value, bool):
        value = "True" if value else "False"
    text = _CONTROL.sub(lambda match: _percent(match.group()), str(value))
    # WSGI (PEP 3333) takes header values as str holding bytes: UTF-8's here.
    return text.encode("utf-8").decode("latin-1")


def _percent(character):
    return "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))


def meta_headers_bytes(image):
    """How many bytes `image`'s metadata headers take in an answer (`name: value` CRLF each)."""
    return sum(len(name) + len(value) + 4 for name, value in image_meta_headers(image))


# Without rendering them: a character takes at most 12 bytes in a header (4 UTF-8
# bytes, each %XX in a name), a header at most this many more (its name's prefix,
# ": " and CRLF; a field's rendered value is at most this much longer than str()'s).
_MOST_BYTES_PER_CHARACTER = 12
_MOST_BYTES_PER_HEADER = 64


def meta_headers_bytes_at_most(record):
    """At least meta_headers_bytes of the image `record` (its fields, as loads hold them)
    would be: cheap enough for every image a load writes."""
    properties = record.get("properties") or {}
    values = [value for key, value in record.items() if key != "properties"]
    characters = sum(len(str(value)) for value in values) + sum(
        len(key) + len(value) for key, value in properties.items()
    )
    headers = len(values) + len(properties) + 1  # and the Etag
    return _MOST_BYTES_PER_CHARACTER * characters + _MOST_BYTES_PER_HEADER * headers
