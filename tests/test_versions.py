import pytest
import requests

from deploy.gunicorn_process import Gunicorn


@pytest.mark.parametrize("path", ["/", "/versions"])
def test_versions_document_lists_both_deprecated_versions(client, path):
    response = client.get(path, base_url="http://images.example:8080")
    assert response.status_code == 300
    assert response.get_json() == {
        "versions": [
            {
                "id": "v1.1",
                "status": "DEPRECATED",
                "links": [{"rel": "self", "href": "http://images.example:8080/v1.1/"}],
            },
            {
                "id": "v1.0",
                "status": "DEPRECATED",
                "links": [{"rel": "self", "href": "http://images.example:8080/v1/"}],
            },
        ]
    }


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cloud.example"}


def _self_link(response):
    return response.get_json()["versions"][0]["links"][0]["href"]


def test_forwarded_headers_are_honoured_only_behind_a_trusted_proxy(client, make_app):
    assert _self_link(client.get("/", headers=FORWARDED)) == "http://localhost/v1.1/"
    proxied = make_app(TRUSTED_PROXIES=1).test_client()
    assert _self_link(proxied.get("/", headers=FORWARDED)) == "https://cloud.example/v1.1/"


def test_public_base_url_wins_over_host_and_forwarded_headers(make_app):
    client = make_app(PUBLIC_BASE_URL="https://images.example.com", TRUSTED_PROXIES=1).test_client()
    response = client.get("/", headers={**FORWARDED, "Host": "evil.example"})
    assert _self_link(response) == "https://images.example.com/v1.1/"


def test_hosts_outside_allowed_hosts_are_400(make_app):
    client = make_app(ALLOWED_HOSTS=["images.example.com"]).test_client()
    refused = client.get("/", headers={"Host": "evil.example"})
    assert refused.status_code == 400
    assert "evil.example" in refused.get_json()["error"]["message"]
    assert client.get("/", headers={"Host": "images.example.com"}).status_code == 300


def test_redirects_never_name_the_requests_host(client):
    response = client.get(
        "/", environ_overrides={"PATH_INFO": "/v1.1//images/detail", "HTTP_HOST": "evil.example"}
    )
    assert response.status_code == 308
    assert response.headers["Location"] == "/v1.1/images/detail"


@pytest.mark.parametrize("spelling", ["X-Forwarded_Host", "X_Forwarded-Host", "X_Forwarded_Host"])
def test_a_clients_underscore_spelling_never_joins_the_proxys_forwarded_host(
    app, database_url, spelling
):
    # As serve runs gunicorn for v1 writes: headers with underscores mapped, as
    # X-Forwarded-Host would be: gunicorn would join them, and the last one is trusted.
    server = Gunicorn(
        {"DATABASE_URL": database_url, "WEB_CONCURRENCY": "1", "TRUSTED_PROXIES": "1"},
        options=("--header-map", "dangerous"),
    )
    try:
        server.wait_until_serving()
        headers = {**FORWARDED, spelling: "evil.example"}
        response = requests.get(server.url + "/", headers=headers, timeout=30)
    finally:
        server.stop()
    assert response.json()["versions"][0]["links"][0]["href"] == "https://cloud.example/v1.1/"
