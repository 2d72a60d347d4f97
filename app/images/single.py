"""One image: HEAD /v1/images/{id} (its metadata) and GET /v1/images/{id} (its data)."""

from flask import abort, current_app, g, redirect, stream_with_context
from werkzeug.exceptions import Forbidden, NotFound

from app import db as database
from app.glance import gateway
from app.images import bp, repository
from app.images.headers import image_meta_headers
from app.images.routes import dump_detail
from app.images.schemas import image_id_schema
from app.web import heartbeat

# Image data moves in pieces of this size (downloads here, uploads in writes.py).
CHUNK = 1 << 20


@bp.route("/<image_id:image_id>", methods=["HEAD"])
def show_image_meta(image_id):
    """Answer an image's metadata as x-image-meta-* headers, with no body.

    :raises 404: no such image, one the caller may not see, or not an image id.
    """
    (image,) = dump_detail([read_image(image_id, repository.find_image)])
    response = current_app.response_class(status=200, content_type="text/html; charset=UTF-8")
    for name, value in image_meta_headers(image):
        response.headers[name] = value
    response.headers["Content-Length"] = "0"
    return response


@bp.get("/<image_id:image_id>")
def download_image(image_id):
    """Send the image's data, streamed from Glance with the caller's token, as Glance v1 did.

    With local tokens (no Keystone token for Glance), or [glance_api]
    redirect_downloads, a 303 to the Image service's /v2/images/{id}/file instead.

    :raises 404: as for HEAD, or an image that is not active (as Glance did).
    :raises 403: a deactivated image (as Glance did).
    :raises 501: a redirect without [DEFAULT] image_service_url.
    """
    row = read_image(image_id, repository.find_image)
    image_id, status = row[repository.ID], row[repository.STATUS]
    if status == "deactivated":
        raise Forbidden(description=f"Image {image_id} is deactivated.")
    if status != "active":
        raise NotFound(description=f"Image {image_id} is not active.")
    config = current_app.config
    if config["AUTH_STRATEGY"] == "keystone" and not config["GLANCE_API_REDIRECT_DOWNLOADS"]:
        return _streamed(row)
    service = current_app.config["IMAGE_SERVICE_URL"]
    if not service:
        abort(
            501,
            description="This catalogue serves image metadata only; download the data from "
            f"the cloud's Image service: GET /v2/images/{image_id}/file.",
        )
    return redirect(f"{service.rstrip('/')}/v2/images/{image_id}/file", code=303)


def _streamed(row):
    """The image's data from Glance, piece by piece, with v1's x-image-meta-* headers."""
    (image,) = dump_detail([row])
    upstream = gateway.for_caller().download(image["id"])

    def data():
        for chunk in upstream.iter_content(CHUNK):
            heartbeat.beat()
            yield chunk

    response = current_app.response_class(stream_with_context(data()), status=200)
    # Even when the answer is dropped before any of it is sent.
    response.call_on_close(upstream.close)
    for name, value in image_meta_headers(image):
        response.headers[name] = value
    response.content_type = "application/octet-stream"
    if "Content-Length" in upstream.headers:
        response.headers["Content-Length"] = upstream.headers["Content-Length"]
    # nginx sends it on as it comes, instead of holding it for a slow client.
    response.headers["X-Accel-Buffering"] = "no"
    return response


def read_image(raw_id, lookup):
    """What `lookup(reader, caller, image_id)` finds for the image `raw_id` names.

    :raises 404: as image_or_404.
    """
    return database.read(lambda reader: image_or_404(reader, raw_id, lookup), g.caller.affinity)


def image_or_404(reader, raw_id, lookup):
    """What `lookup(reader, caller, image_id)` finds for the image `raw_id` names, with `reader`.

    :raises 404: not an image id, or `lookup` found nothing (None): the same
        for "no such image" and "you may not see it".
    """
    found = lookup(reader, g.caller, image_id_or_404(raw_id))
    if found is None:
        raise _no_image(raw_id)
    return found


def image_id_or_404(raw_id):
    """The image id (a UUID) `raw_id` names.

    :raises 404: not an image id (the same answer as for no such image).
    """
    image_id = image_id_schema.load_id(raw_id)
    if image_id is None:
        raise _no_image(raw_id)
    return image_id


def _no_image(raw_id):
    return NotFound(description=f"No image found with ID {raw_id[:100]}.")
