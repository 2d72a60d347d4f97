"""X-Openstack-Request-Id on every response, as Glance's context middleware set it."""

import re
import uuid

from flask import g, request

HEADER = "X-Openstack-Request-Id"
MAX_LENGTH = 64
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def init_app(app):
    app.after_request(_add_header)


def current():
    """Return this request's id: the caller's (at most 64 printable characters) or a new one."""
    if "request_id" not in g:
        g.request_id = request_id_for(request.headers.get(HEADER, ""))
    return g.request_id


def request_id_for(incoming):
    """The id of a request that came with id `incoming` (may be ''): that one, or a new one."""
    if len(incoming) <= MAX_LENGTH and _PRINTABLE.fullmatch(incoming):
        return incoming if incoming.startswith("req-") else f"req-{incoming}"
    return f"req-{uuid.uuid4()}"


def _add_header(response):
    response.headers[HEADER] = current()
    return response
