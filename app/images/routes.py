import json

from flask import current_app, g, request
from werkzeug.exceptions import BadRequest

from app import db as database
from app.images import bp, repository
from app.images.schemas import BRIEF_FIELDS, ImageQuerySchema, ImageSchema, query_params
from app.images.serializer import compile_dumper

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
    return _listing(dump_detail(_rows(with_properties=True)))


@bp.get("")
def list_images_brief():
    """List the same images as /detail with only the six index fields."""
    return _listing(dump_brief(_rows(with_properties=False)))


def _rows(*, with_properties):
    """The page of listing rows the request's query asks for.

    :raises 400: a bad parameter, or a marker the caller cannot page from.
    """
    query = image_query_schema.load(query_params(request.args))
    caller = g.caller
    try:
        return database.read(
            lambda reader: repository.list_images(
                reader, caller, query, with_properties=with_properties
            ),
            caller.affinity,
        )
    except repository.InvalidMarker as error:
        raise BadRequest(description=f"Invalid marker {error}. Image could not be found.") from None


def _listing(images):
    return current_app.response_class(
        _encoder.encode({"images": images}) + "\n", mimetype=current_app.json.mimetype
    )
