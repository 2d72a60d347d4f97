"""The one HTTP client for Glance v2: its address, the caller's token, timeouts, streaming.

Glance's address is [DEFAULT] image_service_url, else the `image` endpoint
of the caller's service catalog ([glance_api] region_name, interface), which
keystonemiddleware hands the app with the token. Every call carries the
caller's token and request id, asks for JSON errors, and is bounded by
[glance_api] connect_timeout and read_timeout: Glance down or silent is
GlanceUnavailable (a 503), never a hung worker. Only reads are retried, once,
after their connection failed.
"""

import http.cookiejar
import json
import re
from urllib.parse import quote

import requests
from flask import current_app, request

from app.web import heartbeat, request_id

JSON_PATCH = "application/openstack-images-v2.1-json-patch"
_TAGS = re.compile(r"<[^>]+>")


class GlanceError(Exception):
    """Glance refused the call: its status and message (e.g. 403, "Image is protected")."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class GlanceUnavailable(Exception):
    """Glance could not be reached, or did not answer in time."""


class NoImageService(Exception):
    """No Glance to write to: neither image_service_url nor an image endpoint in the catalog."""


def for_caller():
    """A Glance client for this request: its token, its request id, the configured Glance."""
    config = current_app.config
    return Glance(
        service_url(),
        request.headers.get("X-Auth-Token", ""),
        request_id=request_id.current(),
        timeouts=(config["GLANCE_API_CONNECT_TIMEOUT"], config["GLANCE_API_READ_TIMEOUT"]),
        session=_session(),
    )


def _session():
    """This worker's pool of connections to Glance (the app is made in each worker)."""
    extensions = current_app.extensions
    if "glance_session" not in extensions:
        session = requests.Session()
        # Each call carries its caller's token: nothing one caller was given reaches another.
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        extensions["glance_session"] = session
    return extensions["glance_session"]


def service_url():
    """Glance's base URL (no /v2).

    :raises NoImageService: none is configured, and the catalog names none.
    """
    config = current_app.config
    if config["IMAGE_SERVICE_URL"]:
        return config["IMAGE_SERVICE_URL"].rstrip("/")
    catalog = json.loads(request.headers.get("X-Service-Catalog") or "[]")
    region, interface = config["GLANCE_API_REGION_NAME"], config["GLANCE_API_INTERFACE"]
    for service in catalog:
        if service.get("type") != "image":
            continue
        for endpoint in service.get("endpoints", []):
            if region is None or endpoint.get("region") == region:
                url = _endpoint_url(endpoint, interface)
                if url:
                    return url.rstrip("/")
    raise NoImageService(
        "no Image service to write to: set [DEFAULT] image_service_url, or [glance_api] "
        "region_name and interface to the catalog's Glance endpoint"
    )


def _endpoint_url(endpoint, interface):
    """An endpoint's URL for `interface`: keystonemiddleware hands the catalog in Keystone v2's
    form (one entry per region, with publicURL, internalURL, adminURL), a v3 catalog
    has one entry per interface."""
    if f"{interface}URL" in endpoint:
        return endpoint[f"{interface}URL"]
    return endpoint.get("url") if endpoint.get("interface") == interface else None


class Glance:
    """Glance v2's image calls, as one caller."""

    def __init__(self, url, token, *, request_id, timeouts, session):
        self.url, self.timeouts, self.session = f"{url}/v2", timeouts, session
        self.headers = {
            "X-Auth-Token": token,
            "Accept": "application/json",
            "X-Openstack-Request-Id": request_id,
        }

    def show(self, image_id):
        return self._call("GET", f"/images/{image_id}").json()

    def create(self, image):
        return self._call("POST", "/images", json=image).json()

    def update(self, image_id, operations):
        headers = {"Content-Type": JSON_PATCH}
        return self._call(
            "PATCH", f"/images/{image_id}", data=json.dumps(operations), headers=headers
        ).json()

    def delete(self, image_id):
        self._call("DELETE", f"/images/{image_id}")

    def upload(self, image_id, chunks, size=None):
        """Stream `chunks` (bytes) as the image's data, chunked; `size`, when known, is
        checked by Glance (x-openstack-image-size: its store compares what it wrote)."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["x-openstack-image-size"] = str(size)
        # urllib3 sends a body under the connect timeout: a store slow to take
        # a piece has the read timeout, as it has for its answer.
        read_timeout = self.timeouts[1]
        self._call(
            "PUT",
            f"/images/{image_id}/file",
            data=chunks,
            headers=headers,
            timeout=(max(self.timeouts[0], read_timeout), read_timeout),
        )

    def download(self, image_id):
        """The image's data as a streamed response (close it when done)."""
        return self._call("GET", f"/images/{image_id}/file", stream=True)

    def members(self, image_id):
        return [
            member["member_id"]
            for member in self._call("GET", f"/images/{image_id}/members").json()["members"]
        ]

    def add_member(self, image_id, member):
        self._call("POST", f"/images/{image_id}/members", json={"member": member})

    def remove_member(self, image_id, member):
        self._call("DELETE", f"/images/{image_id}/members/{quote(member, safe='')}")

    def import_from(self, image_id, uri):
        """Glance's web-download import of `uri` into the queued image (v1's copy-from)."""
        method = {"method": {"name": "web-download", "uri": uri}}
        self._call("POST", f"/images/{image_id}/import", json=method)

    def add_location(self, image_id, url):
        """Glance's add-location (v1's x-image-meta-location) for the queued image."""
        self._call("POST", f"/images/{image_id}/locations", json={"url": url})

    def _call(self, method, path, *, headers=None, timeout=None, **options):
        """The response of a call; reads are tried twice if the first could not connect.

        :raises GlanceError: Glance answered 4xx or 5xx.
        :raises GlanceUnavailable: it could not be reached, did not answer in time, or
            answered a redirect (the caller's token goes to this Glance only).
        """
        attempts = 2 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            heartbeat.beat()  # each call waits at most the read timeout (serve's --timeout)
            try:
                response = self.session.request(
                    method,
                    self.url + path,
                    headers={**self.headers, **(headers or {})},
                    timeout=timeout or self.timeouts,
                    allow_redirects=False,
                    **options,
                )
                break
            except requests.ConnectionError as error:
                # A read whose connection failed is tried again; nothing else is.
                if attempt == attempts:
                    raise GlanceUnavailable(_unavailable(error)) from None
            except requests.Timeout as error:
                raise GlanceUnavailable(_unavailable(error)) from None
        if response.status_code >= 400:
            raise GlanceError(response.status_code, _message(response))
        if response.is_redirect:
            raise GlanceUnavailable(f"Glance answered {response.status_code}, a redirect")
        return response


def _unavailable(error):
    return f"Glance did not answer in time or could not be reached ({type(error).__name__})"


def _message(response):
    """Glance's explanation of an error, as plain text (its JSON error bodies hold HTML)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if isinstance(body.get("error"), dict):  # keystonemiddleware's 401
        body = body["error"]
    text = _TAGS.sub(" ", str(body.get("message") or response.reason))
    return " ".join(text.split())[:500]
