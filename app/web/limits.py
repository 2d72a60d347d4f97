"""Refuse oversized requests before any work: 414 for a long query, 431 for big headers.

gunicorn and nginx (deploy/) refuse still larger ones at their own limits.
"""

from flask import current_app, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge


def init_app(app):
    app.before_request(reject_oversized)


def reject_oversized():
    limit = current_app.config["MAX_QUERY_STRING_BYTES"]
    if len(request.query_string) > limit:
        raise RequestURITooLarge(description=f"The query string is longer than {limit} bytes.")
    limit = current_app.config["MAX_HEADER_BYTES"]
    if sum(len(name) + len(value or "") for name, value in request.headers.items()) > limit:
        raise RequestHeaderFieldsTooLarge(description=f"The headers exceed {limit} bytes.")
