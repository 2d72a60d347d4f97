"""The versions document that openstacksdk and keystoneauth use for discovery."""

from flask import Blueprint, current_app, request

bp = Blueprint("versions", __name__)

VERSIONS = (("v1.1", "v1.1"), ("v1.0", "v1"))


@bp.get("/")
@bp.get("/versions")
def list_versions():
    """List the API versions this service serves, both deprecated like Glance v1."""
    # PUBLIC_BASE_URL when set: then neither Host nor X-Forwarded-* can steer clients.
    base = (current_app.config["PUBLIC_BASE_URL"] or request.host_url).rstrip("/")
    versions = [
        {
            "id": version_id,
            "status": "DEPRECATED",
            "links": [{"rel": "self", "href": f"{base}/{path}/"}],
        }
        for version_id, path in VERSIONS
    ]
    return {"versions": versions}, 300
