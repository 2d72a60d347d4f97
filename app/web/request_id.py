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
        incoming = request.headers.get(HEADER, "")
        if len(incoming) <= MAX_LENGTH and _PRINTABLE.fullmatch(incoming):
            g.request_id = incoming if incoming.startswith("req-") else f"req-{incoming}"
        else:
            g.request_id = f"req-{uuid.uuid4()}"
    return g.request_id


def _add_header(response):
    response.headers[HEADER] = current()
    return response
