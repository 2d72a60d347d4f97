"""GET and HEAD /healthcheck for load balancers, answered as oslo.middleware's healthcheck does.

`200 OK` while the process runs; `503 DISABLED BY FILE` while [healthcheck]
disable_by_file_path exists, so that an operator drains a node by creating
that file. Answered in front of the app: no Host check (HAProxy probes by
address), no token, no database.
"""

import os

PATH = "/healthcheck"
ANSWERED = ("GET", "HEAD")


def wrap(wsgi_app, disable_by_file):
    """`wsgi_app` with /healthcheck answered before it."""

    def healthcheck(environ, start_response):
        if environ.get("PATH_INFO") != PATH:
            return wsgi_app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        headers = [("Content-Type", "text/plain")]
        if method not in ANSWERED:
            status, body = "405 Method Not Allowed", b"Method Not Allowed"
            headers.append(("Allow", ", ".join(ANSWERED)))
        elif disable_by_file and os.path.exists(disable_by_file):
            status, body = "503 Service Unavailable", b"DISABLED BY FILE"
        else:
            status, body = "200 OK", b"OK"
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [] if method == "HEAD" else [body]

    return healthcheck
