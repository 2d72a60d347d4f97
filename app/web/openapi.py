"""The OpenAPI 3 document of the listing API, generated from the marshmallow schemas."""

import functools

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint

from app.images import schemas

bp = Blueprint("openapi", __name__)

LISTING_PATHS = {
    "/v1.1/images/detail": ("ImageDetail", "List images with every field."),
    "/v1/images/detail": ("ImageDetail", "The same as /v1.1/images/detail."),
    "/v1.1/images": ("ImageBrief", "List images with the six index fields."),
    "/v1/images": ("ImageBrief", "The same as /v1.1/images."),
}
ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "title": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}


@bp.get("/openapi.json")
def openapi_document():
    """Serve the OpenAPI 3 document."""
    return build_document()


@functools.cache
def build_document():
    plugin = MarshmallowPlugin()
    spec = APISpec("Image catalogue", "1.1", "3.0.3", plugins=[plugin])
    for field_class in (schemas.MatchValues, schemas.Choice, schemas.Timestamp):
        plugin.map_to_openapi_type(field_class, "string", None)
    spec.components.schema("ImageDetail", schema=schemas.ImageSchema)
    spec.components.schema("ImageBrief", schema=schemas.ImageSchema(only=schemas.BRIEF_FIELDS))
    spec.components.schema("Error", ERROR)
    spec.components.security_scheme(
        "token", {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
    )
    for path, (image_schema, summary) in LISTING_PATHS.items():
        spec.path(path=path, operations={"get": _listing_operation(image_schema, summary)})
    return spec.to_dict()


def _listing_operation(image_schema, summary):
    listing = {
        "type": "object",
        "properties": {
            "images": {"type": "array", "items": {"$ref": f"#/components/schemas/{image_schema}"}}
        },
        "required": ["images"],
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "summary": summary,
        "description": "Filters, sorting and paging as in README.md. Also accepted: "
        "property-<key>=<value> (exact match on a custom property).",
        "security": [{"token": []}],
        "parameters": [{"in": "query", "schema": schemas.ImageQuerySchema}],
        "responses": {
            "200": {
                "description": "The page of images.",
                "content": {"application/json": {"schema": listing}},
            },
            **{
                status: {"description": description, "content": error}
                for status, description in (
                    ("400", "A bad parameter, named in the message."),
                    ("401", "Missing, unknown or expired token."),
                    ("403", "The token has none of the roles allowed to list."),
                    ("503", "The database is unavailable; retry after Retry-After seconds."),
                )
            },
        },
    }
