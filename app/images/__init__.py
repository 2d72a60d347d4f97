from flask import Blueprint
from werkzeug.routing import BaseConverter

from app.auth import authenticate

bp = Blueprint("images", __name__)
bp.before_request(authenticate)


class ImageIdConverter(BaseConverter):
    """An image id in a path: any segment but `detail` and `changes`, the listing and the feed.

    So HEAD /v1/images/detail is the listing's 405, as in Glance, not an image's 404.
    """

    regex = "(?!(?:detail|changes)$)[^/]+"


@bp.record_once
def _add_converter(state):
    state.app.url_map.converters["image_id"] = ImageIdConverter


# Each module registers its views on bp (members.py also shared-images' own blueprint).
from app.images import feed, members, routes, single  # noqa: E402,F401
