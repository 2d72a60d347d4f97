from flask import Blueprint

from app.auth import authenticate

bp = Blueprint("images", __name__)
bp.before_request(authenticate)

from app.images import routes  # noqa: E402,F401  (registers the views on bp)
