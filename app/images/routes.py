import json

from flask import g, request
from werkzeug.exceptions import BadRequest

from app.images import bp, repository
from app.images.schemas import BRIEF_FIELDS, ImageQuerySchema, ImageSchema, query_params
from app.images.serializer import compile_dumper
from app.web.answers import answer

image_query_schema = ImageQuerySchema()
# Compiled from ImageSchema at import: a field it cannot compile stops start-up.
dump_detail = compile_dumper(ImageSchema(many=True), repository.LISTING_COLUMNS)
dump_brief = compile_dumper(
    ImageSchema(many=True, only=BRIEF_FIELDS), repository.LISTING_COLUMNS[:-1]
)
# What Flask's JSON provider writes (ASCII, compact), without its per-call set-up.
encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False)


def json_text(document):
    """An answer's body as Flask's JSON provider writes it, its newline at the end too."""
    return encoder.encode(document) + "\n"


@bp.get("/detail")
def list_images_detail():
    """List the images visible to the caller, with every field, filtered and paged."""
    query = image_query_schema.load(query_params(request.args))
    return answer(
        ("detail", query),
        lambda reader, _: _listing(reader, query, dump_detail),
        for_pollers=True,
    )


@bp.get("")
def list_images_brief():
    """List the same images as /detail with only the six index fields."""
    query = image_query_schema.load(query_params(request.args))
    return answer(
        ("brief", query), lambda reader, _: _listing(reader, query, dump_brief), for_pollers=True
    )


def _listing(reader, query, dump):
    """The listing's JSON text: the page of images `query` asks for, as `dump` renders them.

    :raises 400: a marker the caller cannot page from.
    """
    try:
        rows = repository.list_images(reader, g.caller, query, with_properties=dump is dump_detail)
    except repository.InvalidMarker as error:
        raise BadRequest(description=f"Invalid marker {error}. Image could not be found.") from None
    return json_text({"images": dump(rows)})
