"""Change-feed cursors: where a poller stands, signed by the catalogue that issued them.

A cursor is opaque to clients: base64url of a version byte, the start of
the issuing catalogue's deployment id, `held`, the position `(change,
image id)` after which the next page starts, and an HMAC of all that with
the catalogue's cursor key (catalogue_state). So a cursor altered by hand,
cut short or issued by another catalogue is refused, each with its own
message.

`held` is the change number from which the poller's view is complete: no
tombstone it needs is older than max(held, change). A poller that caught up
holds the whole catalogue as of `change` (held == change); one part-way
through its first pages holds images as of the change number of its first
page, while its position walks through older change numbers.
"""

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from typing import NamedTuple

VERSION = 1
_LAYOUT = struct.Struct(">B4sqq16s")
_MAC_BYTES = 12
# After every image of a change: the position of a poller that caught up.
LAST_ID = uuid.UUID(int=(1 << 128) - 1)


class InvalidCursor(ValueError):
    """The cursor was not issued by this catalogue, or not as sent; the message says which."""


class Position(NamedTuple):
    held: int
    change: int
    image_id: uuid.UUID

    @classmethod
    def caught_up(cls, change):
        """After every change up to `change`, with the catalogue as of it."""
        return cls(change, change, LAST_ID)


def encode(position, deployment, key):
    held, change, image_id = position
    payload = _LAYOUT.pack(VERSION, _deployment_tag(deployment), held, change, image_id.bytes)
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode()


def decode(text, deployment, key):
    """The Position `text` encodes.

    :raises InvalidCursor: not a cursor, another catalogue's, or altered.
    """
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCursor("it is not a cursor this service issues (not base64url)") from None
    if len(raw) != _LAYOUT.size + _MAC_BYTES or raw[0] != VERSION:
        raise InvalidCursor("it is not a whole cursor (cut short, or not one at all)")
    payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    _, tag, held, change, image_id = _LAYOUT.unpack(payload)
    if tag != _deployment_tag(deployment):
        raise InvalidCursor("it was issued by another image catalogue")
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise InvalidCursor("it was altered: it is not one this catalogue issued")
    return Position(held, change, uuid.UUID(bytes=image_id))


def _deployment_tag(deployment):
    return uuid.UUID(str(deployment)).bytes[:4]


def _mac(key, payload):
    return hmac.new(bytes(key), payload, hashlib.sha256).digest()[:_MAC_BYTES]
