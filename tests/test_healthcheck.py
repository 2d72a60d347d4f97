"""/healthcheck for load balancers: oslo.middleware's answers, before Host checks and tokens."""

import pytest


@pytest.fixture
def disable_file(tmp_path):
    return tmp_path / "healthcheck_disable"


@pytest.fixture
def client(make_app, disable_file):
    app = make_app(
        HEALTHCHECK_DISABLE_BY_FILE=str(disable_file), ALLOWED_HOSTS=["images.example.com"]
    )
    return app.test_client()


def test_get_and_head_answer_ok(client):
    response = client.get("/healthcheck", headers={"Host": "10.0.0.7:8080"})
    assert (response.status_code, response.get_data(), response.mimetype) == (
        200,
        b"OK",
        "text/plain",
    )
    head = client.head("/healthcheck", headers={"Host": "10.0.0.7:8080"})
    assert (head.status_code, head.get_data(), head.headers["Content-Length"]) == (200, b"", "2")


def test_the_host_check_still_holds_elsewhere(client):
    assert client.get("/healthz", headers={"Host": "10.0.0.7:8080"}).status_code == 400


def test_the_disable_file_drains_the_node_while_it_exists(client, disable_file):
    disable_file.touch()
    response = client.get("/healthcheck")
    assert (response.status_code, response.get_data()) == (503, b"DISABLED BY FILE")
    assert client.head("/healthcheck").status_code == 503
    disable_file.unlink()
    assert client.get("/healthcheck").status_code == 200


def test_other_methods_are_405(client):
    response = client.post("/healthcheck")
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, HEAD")


def test_it_answers_while_the_database_is_down(make_app):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1)
    client = app.test_client()
    assert client.get("/healthcheck").status_code == 200
    assert client.get("/readyz").status_code == 503
