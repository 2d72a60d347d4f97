def image_ids(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return [image["id"] for image in response.get_json()["images"]]


def error_message(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]
