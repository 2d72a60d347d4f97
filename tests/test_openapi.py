"""/openapi.json, generated from the marshmallow schemas."""


def test_openapi_document_describes_the_listing(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operation = document["paths"]["/v1.1/images/detail"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"name", "size_min", "changes-since", "sort_key", "marker", "limit"} <= names
    image = document["components"]["schemas"]["ImageDetail"]["properties"]
    assert len(image) == 18
    assert set(document["paths"]) == {
        "/v1.1/images/detail",
        "/v1/images/detail",
        "/v1.1/images",
        "/v1/images",
    }
