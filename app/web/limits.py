"""Refuse oversized requests before any work: 414 for a long query, 431 for big headers.

gunicorn and nginx (deploy/) refuse still larger ones at their own limits.
"""

from flask import current_app, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge


def init_app(app):
    app.before_request(reject_oversized)


def reject_oversized():
    refusal = oversized(request.environ, current_app.config)
    if refusal is not None:
        raise refusal


def oversized(environ, config):
    """The HTTPException a request too large for `config`'s limits gets, or None."""
    limit = config["MAX_QUERY_STRING_BYTES"]
    if len(environ.get("QUERY_STRING", "")) > limit:
        return RequestURITooLarge(description=f"The query string is longer than {limit} bytes.")
    limit = config["MAX_HEADER_BYTES"]
    if _header_bytes(environ) > limit:
        return RequestHeaderFieldsTooLarge(description=f"The headers exceed {limit} bytes.")
    return None


def _header_bytes(environ):
    """The bytes of the request's headers, as werkzeug names them (Content-Type, X-Auth-Token)."""
    # keystonemiddleware removes a client's identity headers by setting them to None.
    return sum(
        len(name) - 5 + len(value or "")
        for name, value in environ.items()
        if name.startswith("HTTP_")
    ) + sum(len(name) + len(environ[name]) for name in _BARE if environ.get(name))


# Headers WSGI passes without the HTTP_ prefix.
_BARE = ("CONTENT_TYPE", "CONTENT_LENGTH")
