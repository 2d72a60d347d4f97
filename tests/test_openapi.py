"""/openapi.json, generated from the marshmallow schemas: every path the service serves."""


def test_openapi_document_describes_the_listing(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operation = document["paths"]["/v1.1/images/detail"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"name", "size_min", "changes-since", "sort_key", "marker", "limit"} <= names
    image = document["components"]["schemas"]["ImageDetail"]["properties"]
    assert len(image) == 18
    assert set(document["paths"]) == {
        f"{version}{path}"
        for version in ("/v1", "/v1.1")
        for path in (
            "/images/detail",
            "/images",
            "/images/{image_id}",
            "/images/{image_id}/members",
            "/images/{image_id}/members/{member}",
            "/shared-images/{member}",
        )
    }
    one_image = document["paths"]["/v1/images/{image_id}"]
    assert set(one_image) == {"head", "get"} and "303" in one_image["get"]["responses"]
