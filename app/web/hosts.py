"""What the Host header may steer: nothing but the versions document's links.

ALLOWED_HOSTS makes any other Host a 400 (Flask's TRUSTED_HOSTS check), and
redirects to this service (werkzeug's, for a path such as
//v1.1/images/detail, built on the request's Host) carry a relative Location,
so no Host a client sends can point other clients elsewhere. A redirect to
another service (the Image service's data URL, from settings) stays whole.
"""

from urllib.parse import urlsplit, urlunsplit

from flask import request

REDIRECTS = frozenset({301, 302, 303, 307, 308})


def init_app(app):
    app.after_request(relative_location)


def relative_location(response):
    if response.status_code in REDIRECTS and "Location" in response.headers:
        target = urlsplit(response.headers["Location"])
        if target.netloc in ("", request.host):
            response.headers["Location"] = urlunsplit(("", "", target.path, target.query, ""))
    return response
