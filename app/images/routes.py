from flask import g, request
from werkzeug.exceptions import BadRequest

from app.db import db
from app.images import bp, repository
from app.images.schemas import BRIEF_FIELDS, ImageQuerySchema, ImageSchema, query_params
from app.web.errors import error_response

image_query_schema = ImageQuerySchema()
images_schema = ImageSchema(many=True)
brief_images_schema = ImageSchema(many=True, only=BRIEF_FIELDS)


@bp.get("/detail")
def list_images_detail():
    """List the images visible to the caller, with every field, filtered and paged."""
    query = image_query_schema.load(query_params(request.args))
    rows = repository.list_images(db.session, g.caller, query)
    return {"images": images_schema.dump(rows)}


@bp.get("")
def list_images_brief():
    """List the same images as /detail with only the six index fields."""
    query = image_query_schema.load(query_params(request.args))
    rows = repository.list_images(db.session, g.caller, query, with_properties=False)
    return {"images": brief_images_schema.dump(rows)}


@bp.errorhandler(repository.InvalidMarker)
def invalid_marker(error):
    return error_response(
        BadRequest(description=f"Invalid marker {error}. Image could not be found.")
    )
