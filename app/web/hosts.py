"""What the Host header may steer: nothing but the versions document's links.

ALLOWED_HOSTS makes any other Host a 400 (Flask's TRUSTED_HOSTS check), and
redirects (werkzeug's, for a path such as //v1.1/images/detail) carry a
relative Location, so no Host a client sends can point other clients elsewhere.
"""

from urllib.parse import urlsplit, urlunsplit

REDIRECTS = frozenset({301, 302, 303, 307, 308})


def init_app(app):
    app.after_request(relative_location)


def relative_location(response):
    if response.status_code in REDIRECTS and "Location" in response.headers:
        target = urlsplit(response.headers["Location"])
        response.headers["Location"] = urlunsplit(("", "", target.path, target.query, ""))
    return response
