import pytest


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
