from flask import Blueprint

bp = Blueprint("images", __name__)

from app.images import routes  # noqa: E402,F401  (registers the views on bp)
