"""Where writes go (app/glance/gateway.py): Glance's address, from the settings or the catalog."""

import json

import pytest

from app.glance import gateway

# As keystonemiddleware hands it on (Keystone v2's form, whatever the token's version).
CATALOG = [
    {"type": "identity", "endpoints": [{"region": "one", "publicURL": "http://keystone"}]},
    {
        "type": "image",
        "name": "glance",
        "endpoints": [
            {"region": "one", "publicURL": "http://one.pub/", "internalURL": "http://one.int"},
            {"region": "two", "publicURL": "http://two.pub", "internalURL": "http://two.int"},
        ],
    },
]


def _service_url(app, monkeypatch, catalog=CATALOG, **settings):
    for name, value in {"IMAGE_SERVICE_URL": "", **settings}.items():
        monkeypatch.setitem(app.config, name, value)
    with app.test_request_context(headers={"X-Service-Catalog": json.dumps(catalog)}):
        return gateway.service_url()


def test_glance_is_the_catalogs_image_endpoint_of_the_region_and_interface(app, monkeypatch):
    settings = {"GLANCE_API_REGION_NAME": "two", "GLANCE_API_INTERFACE": "internal"}
    assert _service_url(app, monkeypatch, **settings) == "http://two.int"
    settings = {"GLANCE_API_REGION_NAME": None, "GLANCE_API_INTERFACE": "public"}
    assert _service_url(app, monkeypatch, **settings) == "http://one.pub"


def test_a_v3_catalog_and_image_service_url_are_read_too(app, monkeypatch):
    v3 = [{"type": "image", "endpoints": [{"interface": "internal", "url": "http://v3"}]}]
    settings = {"GLANCE_API_REGION_NAME": None, "GLANCE_API_INTERFACE": "internal"}
    assert _service_url(app, monkeypatch, v3, **settings) == "http://v3"
    settings["IMAGE_SERVICE_URL"] = "http://configured/"
    assert _service_url(app, monkeypatch, **settings) == "http://configured"


def test_no_image_endpoint_says_what_to_set(app, monkeypatch):
    settings = {"GLANCE_API_REGION_NAME": "three", "GLANCE_API_INTERFACE": "internal"}
    with pytest.raises(gateway.NoImageService, match="image_service_url"):
        _service_url(app, monkeypatch, **settings)
