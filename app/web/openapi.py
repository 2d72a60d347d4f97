"""The OpenAPI 3 document of the v1 API served, generated from the marshmallow schemas."""

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
ERROR_MEANINGS = {
    "400": "A bad parameter, named in the message.",
    "401": "Missing, unknown or expired token.",
    "403": "The token has none of the allowed roles (for an image's data: it is deactivated).",
    "404": "No such image, or one the caller may not see (the same answer).",
    "501": "[DEFAULT] image_service_url is not set: the message says where image data is served.",
    "503": "The database is unavailable; retry after Retry-After seconds.",
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
    spec.components.schema("Member", schema=schemas.MemberSchema)
    spec.components.schema("SharedImage", schema=schemas.SharedImageSchema)
    for path, (image_schema, summary) in LISTING_PATHS.items():
        spec.path(path=path, operations={"get": _listing_operation(image_schema, summary)})
    for version in ("/v1", "/v1.1"):
        _add_image_paths(spec, version)
    return spec.to_dict()


def _add_image_paths(spec, version):
    """One image, its members, and what is shared with a project (docs/api.md)."""
    image = {"in": "path", "name": "image_id", "required": True, "schema": {"type": "string"}}
    member = {"in": "path", "name": "member", "required": True, "schema": {"type": "string"}}
    spec.path(
        path=f"{version}/images/{{image_id}}",
        operations={
            "head": _operation(
                "The image's metadata as x-image-meta-* headers, no body.",
                [image],
                {"200": {"description": "The image's metadata, in headers."}},
                ("404",),
            ),
            "get": _operation(
                "Where the image's data is: a redirect to the Image service (Glance v2).",
                [image],
                {"303": {"description": "The data's URL, in Location."}},
                ("403", "404", "501"),
            ),
        },
    )
    spec.path(
        path=f"{version}/images/{{image_id}}/members",
        operations={"get": _json_operation("The image's members.", [image], "members", "Member")},
    )
    spec.path(
        path=f"{version}/images/{{image_id}}/members/{{member}}",
        operations={
            "get": _json_operation("One membership.", [image, member], "member", "Member", one=True)
        },
    )
    spec.path(
        path=f"{version}/shared-images/{{member}}",
        operations={
            "get": _json_operation(
                "The images shared with a project.", [member], "shared_images", "SharedImage"
            )
        },
    )


def _json_operation(summary, parameters, key, schema, one=False):
    ok = {"description": summary, "content": _json_body(key, schema, one=one)}
    return _operation(summary, parameters, {"200": ok}, ("404",))


def _json_body(key, schema, one=False):
    """A JSON object whose `key` holds one `schema` or (by default) a list of them."""
    item = {"$ref": f"#/components/schemas/{schema}"}
    body = {
        "type": "object",
        "properties": {key: item if one else {"type": "array", "items": item}},
        "required": [key],
    }
    return {"application/json": {"schema": body}}


def _operation(summary, parameters, answers, errors):
    return {
        "summary": summary,
        "security": [{"token": []}],
        "parameters": parameters,
        "responses": {**answers, **_errors(*errors, "401", "403", "503")},
    }


def _errors(*statuses):
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        status: {"description": ERROR_MEANINGS[status], "content": error} for status in statuses
    }


def _listing_operation(image_schema, summary):
    ok = {"description": "The page of images.", "content": _json_body("images", image_schema)}
    parameters = [{"in": "query", "schema": schemas.ImageQuerySchema}]
    return {
        **_operation(summary, parameters, {"200": ok}, ("400",)),
        "description": "Filters, sorting and paging as in docs/api.md. Also accepted: "
        "property-<key>=<value> (exact match on a custom property).",
    }
