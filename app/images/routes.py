import json

from flask import current_app, g, request
from werkzeug.exceptions import BadRequest

from app import db as database
from app.images import bp, repository
from app.images.schemas import BRIEF_FIELDS, ImageQuerySchema, ImageSchema, query_params
from app.images.serializer import compile_dumper
from app.web.errors import error_response

image_query_schema = ImageQuerySchema()
# Compiled from ImageSchema at import: a field it cannot compile stops start-up.
dump_detail = compile_dumper(ImageSchema(many=True), repository.LISTING_COLUMNS)
dump_brief = compile_dumper(
    ImageSchema(many=True, only=BRIEF_FIELDS), repository.LISTING_COLUMNS[:-1]
)
# What Flask's JSON provider writes (ASCII, compact), without its per-call set-up.
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False)


@bp.get("/detail")
def list_images_detail():
    """List the images visible to the caller, with every field, filtered and paged."""
    query = image_query_schema.load(query_params(request.args))
    rows = database.read(
        lambda reader: repository.list_images(reader, g.caller, query), g.get("affinity", "")
    )
    return _listing(dump_detail(rows))


@bp.get("")
def list_images_brief():
    """List the same images as /detail with only the six index fields."""
    query = image_query_schema.load(query_params(request.args))
    rows = database.read(
        lambda reader: repository.list_images(reader, g.caller, query, with_properties=False),
        g.get("affinity", ""),
    )
    return _listing(dump_brief(rows))


def _listing(images):
    return current_app.response_class(
        _encoder.encode({"images": images}) + "\n", mimetype=current_app.json.mimetype
    )


@bp.errorhandler(repository.InvalidMarker)
def invalid_marker(error):
    return error_response(
        BadRequest(description=f"Invalid marker {error}. Image could not be found.")
    )
