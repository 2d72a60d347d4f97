"""Glance v1's writes, carried out in the cloud's Glance v2 with the caller's own token.

POST /v1/images, PUT and DELETE /v1/images/{id}, PUT and DELETE of a
member, PUT of the member list (docs/api.md, "Writes"). Each reads v1's
headers (app/glance/translation.py), calls Glance (app/glance/gateway.py),
then applies what Glance made of the image to the catalogue at once, from
Glance's database as the mirror does (app/loading/mirror.py apply_images),
and waits until the replicas have it: the next request, on any worker or
node, sees the write. A create whose data does not arrive whole deletes
the image it made, as v1 killed it. Served only with auth_strategy =
keystone and the Glance mirror's database ([glance_mirror] connection):
otherwise writes are the 405 naming why (app/web/errors.py).
"""

import hashlib
import time

from flask import Blueprint, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import (
    BadRequest,
    Conflict,
    NotFound,
    RequestEntityTooLarge,
)

from app import db as database
from app.auth import authenticate
from app.db import db
from app.db.reads import DatabaseUnavailable
from app.glance import gateway
from app.glance.translation import (
    V1Invalid,
    create_request,
    read_v1_image,
    update_operations,
    v1_membership_list,
    v1_record,
)
from app.images import repository
from app.images.routes import dump_detail, encoder
from app.images.schemas import image_schema
from app.images.single import CHUNK, image_id_or_404
from app.loading import mirror
from app.loading.glance_source import GlanceSchemaError, GlanceSource
from app.loading.upsert import SourceConflict
from app.web import heartbeat

bp = Blueprint("image_writes", __name__)
bp.before_request(authenticate)
JSON = "application/json"
# A member list's JSON: Glance's image_member_quota (128) needs a few KiB.
MEMBERS_BODY_MAX = 1 << 20


@bp.post("")
def create_image():
    """Create an image in Glance: its metadata, then its data, location or copy-from.

    :raises 400: v1 would refuse the headers, or two sources of data.
    :raises 413: data declared larger than Glance's image_size_cap.
    """
    image = read_v1_image(request.environ)
    size = _declared_size(image)
    _one_source(image)
    if _has_body():
        _require_formats(image.fields)
    glance = gateway.for_caller()
    created = glance.create(create_request(image, admin=g.caller.is_admin))
    image_id = created["id"]
    try:
        _fill(glance, image_id, image, size, created=True)
    except BaseException:
        # As v1 killed it: no queued image is left behind, here or in Glance.
        _delete_failed_create(glance, image_id)
        raise
    response = _image_answer(image_id, 201, applied=_apply(image_id), glance=glance)
    # As the versions document: PUBLIC_BASE_URL, when set, not what the request says.
    base = (current_app.config["PUBLIC_BASE_URL"] or request.host_url).rstrip("/")
    response.headers["Location"] = f"{base}/v1/images/{image_id}"
    return response


@bp.put("/<image_id:image_id>")
def update_image(image_id):
    """Change an image's metadata (removing properties not sent, unless asked not to); data
    into a queued image.

    :raises 400: v1 would refuse the headers, or two sources of data.
    :raises 409: data for an image that is not queued.
    :raises 413: data declared larger than Glance's image_size_cap.
    """
    image_id = str(image_id_or_404(image_id))
    image = read_v1_image(request.environ)
    _one_source(image)
    has_data = _has_body() or image.location or image.copy_from
    size = _declared_size(image) if has_data else None
    glance = gateway.for_caller()
    current = glance.show(image_id)
    if has_data and current["status"] != "queued":
        if _has_body():
            raise Conflict(description="Cannot upload to an unqueued image")
        raise BadRequest(
            description="Attempted to update Location field for an image not in queued status."
        )
    image.purge = image.purge and not _has_body()  # v1 never purged with data
    if _has_body():
        _require_formats({**current, **image.fields})
    operations = update_operations(image, current, admin=g.caller.is_admin)
    try:
        if operations:
            glance.update(image_id, operations)
        if has_data:
            _fill(glance, image_id, image, size)
    except BaseException:
        _await_glance(glance, image_id, _given_up)  # Glance puts it back to queued
        raise
    finally:
        applied = _apply(image_id)  # whatever Glance made of it, failed data or not
    return _image_answer(image_id, 200, applied=applied, glance=glance)


@bp.delete("/<image_id:image_id>")
def delete_image(image_id):
    """Delete an image in Glance; answer as v1 did (200, no body)."""
    image_id = str(image_id_or_404(image_id))
    gateway.for_caller().delete(image_id)
    _apply(image_id)
    return current_app.response_class(b"", status=200, content_type="text/html; charset=UTF-8")


@bp.put("/<image_id:image_id>/members/<member>")
def add_member(image_id, member):
    """Share an image with project `member` (its can_share is not kept: Glance v2 has none)."""
    image_id = str(image_id_or_404(image_id))
    _json_body(optional=True)
    glance = gateway.for_caller()
    _shareable(glance, image_id, wanted=True)
    _add_member(glance, image_id, member)
    _apply(image_id)
    return _no_content()


@bp.delete("/<image_id:image_id>/members/<member>")
def remove_member(image_id, member):
    """End project `member`'s membership of an image."""
    image_id = str(image_id_or_404(image_id))
    try:
        gateway.for_caller().remove_member(image_id, member)
    except gateway.GlanceError as error:
        if error.status != 404:
            raise
        raise NotFound(description="Membership could not be found.") from None
    _apply(image_id)
    return _no_content()


@bp.put("/<image_id:image_id>/members")
def replace_members(image_id):
    """Make the image's members exactly the list sent."""
    image_id = str(image_id_or_404(image_id))
    wanted = v1_membership_list(_json_body())
    glance = gateway.for_caller()
    current = set(glance.members(image_id)) if _shareable(glance, image_id, bool(wanted)) else set()
    for member in sorted(set(wanted) - current):
        _add_member(glance, image_id, member)
    for member in sorted(current - set(wanted)):
        glance.remove_member(image_id, member)
    _apply(image_id)
    return _no_content()


def _has_body():
    """Whether the request carries data, as v1 decided it (chunked, or a length above 0)."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    return chunked or (request.content_length or 0) > 0


def _one_source(image):
    """:raises 400: data from more than one of the body, a location and copy-from."""
    if sum(map(bool, (image.location, image.copy_from, _has_body()))) > 1:
        raise BadRequest(description="It's invalid to provide multiple image sources.")


def _declared_size(image):
    """The data's size, as declared (x-image-meta-size, else Content-Length), or None.

    :raises 413: larger than Glance's image_size_cap.
    """
    size = image.fields.get("size") or request.content_length or None
    refusal = None if size is None else _oversized(size)
    if refusal is not None:
        raise refusal
    return size


def _require_formats(fields):
    for name, label in (("disk_format", "Disk"), ("container_format", "Container")):
        if not fields.get(name):
            raise BadRequest(description=f"{label} format is not specified.")


def _fill(glance, image_id, image, size, *, created=False):
    """Give the image its data: the request's body, a location, or a copy from a URL.

    :raises _DataRefused: the body was not what its headers said, or did not all arrive.
    :raises 413: more data than Glance's image_size_cap.
    :raises GlanceError, GlanceUnavailable: as every call to Glance.
    """
    if _has_body():
        # A create's image is deleted if its data is refused; an existing one is kept queued.
        cut_off = None if created else lambda: _await_glance(glance, image_id, _started)
        body = _CheckedBody(size, image.fields.get("checksum"), before_cut_off=cut_off)
        try:
            glance.upload(image_id, body, size=size)
        except gateway.GlanceError:
            if body.refusal is None:
                raise
        if body.refusal is not None:
            raise body.refusal
    elif image.location:
        glance.add_location(image_id, image.location)
    elif image.copy_from:
        glance.import_from(image_id, image.copy_from)


class _DataRefused(BadRequest):
    """The uploaded data was not what its headers said (or did not all arrive)."""


class _CheckedBody:
    """The request's body, piece by piece, without keeping it: the last piece goes on only
    once the whole was checked against the declared size and checksum.

    Refused data (`refusal`) cuts the upload to Glance off, once
    `before_cut_off()` returned, and Glance puts the image back to `queued`;
    without `before_cut_off` (a create, whose image is then deleted), the
    body is ended instead, so that Glance is done with the upload when the
    call returns: an image deleted while Glance still handles its failed
    upload is left deleted in status `queued`.
    """

    def __init__(self, size, checksum, *, before_cut_off):
        self.size, self.checksum, self.before_cut_off = size, checksum, before_cut_off
        self.refusal = None

    def __iter__(self):
        # Only a checksum the client gave is computed here: Glance computes its own.
        digest = hashlib.md5(usedforsecurity=False) if self.checksum else None
        received, held = 0, b""
        for chunk in self._pieces():
            heartbeat.beat()
            if digest is not None:
                digest.update(chunk)
            received += len(chunk)
            if held:
                yield held
            held = chunk
            self.refusal = _oversized(received)
            if self.refusal is not None:
                break
        self.refusal = self.refusal or self._unlike(received, digest)
        if self.refusal is not None and self.before_cut_off is not None:
            self.before_cut_off()
            raise self.refusal
        if held:
            yield held

    def _pieces(self):
        stream = request.environ["wsgi.input"]
        while True:
            try:
                chunk = stream.read(CHUNK)
            except Exception:  # noqa: BLE001 - however the server says the client went away
                # (gunicorn: a chunked body cut off before its last chunk)
                self.refusal = _disconnected()
                return
            if not chunk:
                return
            yield chunk

    def _unlike(self, received, digest):
        """The refusal of data of `received` bytes (and `digest`), or None."""
        if request.content_length and received < request.content_length:
            return _disconnected()
        computed = digest and digest.hexdigest()
        for name, supplied, actual in (
            ("size", self.size, received),
            ("checksum", self.checksum, computed),
        ):
            if supplied and supplied != actual:
                return _DataRefused(
                    description=f"Supplied {name} ({supplied}) and {name} generated from "
                    f"uploaded image ({actual}) did not match. Setting image status to 'killed'."
                )
        return None


def _disconnected():
    return _DataRefused(description="Client disconnected before sending all data to backend")


def _oversized(size):
    cap = current_app.config["GLANCE_API_IMAGE_SIZE_CAP"]
    if size <= cap:
        return None
    return RequestEntityTooLarge(
        description=f"Denying attempt to upload image larger than {cap} bytes."
    )


def _delete_failed_create(glance, image_id):
    """Delete an image a failed create made, in Glance and here; best effort."""
    _await_glance(glance, image_id, _given_up)
    try:
        glance.delete(image_id)
    except (gateway.GlanceError, gateway.GlanceUnavailable) as error:
        current_app.logger.warning(
            "could not delete image %s a failed create made: %s", image_id, error
        )
    _apply(image_id)


def _await_glance(glance, image_id, until):
    """Return once `until(status)` holds of the image in Glance, or after read_timeout
    (best effort).

    Glance marks an image `saving` before it reads an upload, and puts it back
    to `queued` when the upload fails: the image mirrored before that would
    show `saving`; deleted before that, it would stay a deleted image in
    status `queued`.
    """
    deadline = time.monotonic() + current_app.config["GLANCE_API_READ_TIMEOUT"]
    try:
        while not until(glance.show(image_id)["status"]) and time.monotonic() < deadline:
            heartbeat.beat()
            time.sleep(0.05)
    except (gateway.GlanceError, gateway.GlanceUnavailable) as error:
        current_app.logger.warning("could not see image %s in Glance: %s", image_id, error)


def _started(status):
    return status != "queued"


def _given_up(status):
    return status != "saving"


def _shareable(glance, image_id, wanted):
    """Whether the image has members in Glance v2's sense (visibility `shared`).

    A private image is made shared when a member is `wanted` (v1 knew no
    private images: an image was public or shared).

    :raises 403: a public or community image (v2 keeps no members for them).
    """
    visibility = glance.show(image_id)["visibility"]
    if visibility == "private" and wanted:
        glance.update(image_id, [{"op": "replace", "path": "/visibility", "value": "shared"}])
        return True
    if visibility in ("public", "community") and wanted:
        raise V1Invalid(
            f"Image {image_id} is {visibility}: Glance v2 keeps members of shared images "
            "only (set x-image-meta-is_public: false first)",
            status=403,
        )
    return visibility == "shared"


def _add_member(glance, image_id, member):
    try:
        glance.add_member(image_id, member)
    except gateway.GlanceError as error:
        if error.status != 409:  # already a member: v1's add was idempotent
            raise


def _json_body(optional=False):
    """The request's JSON, whatever its Content-Type says (as v1 read it).

    :raises 400: not JSON (or, unless `optional`, none).
    :raises 413: longer than MEMBERS_BODY_MAX.
    """
    request.max_content_length = MEMBERS_BODY_MAX
    if optional and not request.get_data(cache=True):
        return None
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise BadRequest(description="Malformed JSON in request body.")
    return body


def _apply(image_id):
    """Mirror the image from Glance's database now, wait until the replicas have it, and
    return True; False when the catalogue could not take it (the write stands in
    Glance, and the mirror's follower brings it to the catalogue)."""
    try:
        mirror.apply_images(db.session, _glance_source(), [image_id])
    except (SQLAlchemyError, GlanceSchemaError, SourceConflict) as error:
        current_app.logger.warning(
            "image %s was written in Glance; the catalogue could not take it now: %s",
            image_id,
            error,
        )
        return False
    database.wait_for_replicas()
    return True


def _glance_source():
    """This worker's reader of Glance's database (the mirror's source)."""
    sources = current_app.extensions
    if "glance_source" not in sources:
        config = current_app.config
        sources["glance_source"] = GlanceSource(
            config["GLANCE_DATABASE_URL"],
            name=config["MIRROR_SOURCE"],
            connect_timeout=config["GLANCE_CONNECT_TIMEOUT"],
            read_timeout=config["GLANCE_READ_TIMEOUT"],
        )
    return sources["glance_source"]


def _image_answer(image_id, status, *, applied, glance):
    """{"image": ...} as the listing renders it now, with the checksum as ETag; as Glance
    shows it when the write was not `applied` to the catalogue, or the catalogue cannot
    show it to the caller now (the write stands: a 503 would invite a second create)."""
    image = _catalogued(image_id) if applied else None
    if image is None:
        image = image_schema.dump(v1_record(glance.show(image_id)))
    response = current_app.response_class(encoder.encode({"image": image}), status=status)
    response.content_type = JSON
    if image["checksum"]:
        response.headers["ETag"] = image["checksum"]
    return response


def _catalogued(image_id):
    """The image as the listing renders it to the caller; None if it cannot now."""
    caller = g.caller
    try:
        row = database.read(
            lambda reader: repository.find_image(reader, caller, image_id), caller.affinity
        )
    except DatabaseUnavailable:
        return None
    return None if row is None else dump_detail([row])[0]


def _no_content():
    return current_app.response_class(status=204)
