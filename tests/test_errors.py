import pytest
import sqlalchemy as sa

from app.db import db, read
from helpers import error_message


def test_unknown_path_is_json_404(client):
    response = client.get("/v2/images")
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert error_message(response, 404)


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/v1.1/images/detail", "/v1/images/detail", "/v1.1/images"])
def test_other_methods_are_405_with_allow_get(client, make_token, method, path):
    response = client.open(path, method=method, headers={"X-Auth-Token": make_token()})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    if method != "HEAD":
        assert response.get_json()["error"]["code"] == 405


def test_unexpected_exception_is_json_500_without_details(make_app):
    app = make_app()

    @app.get("/explode")
    def explode():
        raise RuntimeError("secret detail SELECT * FROM images")

    response = app.test_client().get("/explode")
    message = error_message(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert "SELECT" not in message


def test_unreachable_database_is_503_with_retry_after(make_app, make_token):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1)
    client = app.test_client()
    response = client.get("/readyz")
    error_message(response, 503)
    assert response.headers["Retry-After"] == "1"
    response = client.get("/v1.1/images/detail", headers={"X-Auth-Token": "anything"})
    error_message(response, 503)


def test_statement_timeout_is_503(make_app, app):
    slow_app = make_app(DB_STATEMENT_TIMEOUT_MS=50)

    @slow_app.get("/slow")
    def slow():
        read(lambda reader: reader.rows("SELECT pg_sleep(1)"))
        return {}

    response = slow_app.test_client().get("/slow")
    error_message(response, 503)
    assert response.headers["Retry-After"] == "1"


def test_connection_lost_after_the_response_is_built_keeps_the_response(make_app, database_url):
    import psycopg2

    app = make_app()

    @app.get("/lose-connection")
    def lose_connection():
        backend = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with psycopg2.connect(database_url) as killer:
            killer.cursor().execute("SELECT pg_terminate_backend(%s)", (backend,))
        killer.close()
        return {"kept": True}

    response = app.test_client().get("/lose-connection")
    assert response.status_code == 200 and response.get_json() == {"kept": True}


def _titles_app(make_app):
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1)

    @app.get("/explode")
    def explode():
        raise RuntimeError("boom")

    return app


@pytest.mark.parametrize(
    "method, path, headers, status, title",
    [
        ("GET", "/v1.1/images/detail?limit=-1", "member", 400, "Bad Request"),
        ("GET", "/v1.1/images/detail", None, 401, "Unauthorized"),
        ("GET", "/v1.1/images/detail", "observer", 403, "Forbidden"),
        ("GET", "/v2/images", None, 404, "Not Found"),
        ("POST", "/v1.1/images/detail", None, 405, "Method Not Allowed"),
        ("GET", "/v1.1/images/detail?name=" + "x" * 5000, None, 414, "Request URI Too Long"),
        ("GET", "/healthz", "huge", 431, "Request Header Fields Too Large"),
        ("GET", "/explode", None, 500, "Internal Server Error"),
        ("GET", "/readyz", "unreachable", 503, "Service Unavailable"),
    ],
)
def test_every_error_body_has_the_status_title(
    client, make_app, make_token, method, path, headers, status, title
):
    if path in ("/explode", "/readyz"):
        client = _titles_app(make_app).test_client()
    request_headers = {
        None: {},
        "member": {"X-Auth-Token": make_token()},
        "observer": {"X-Auth-Token": make_token(roles=("observer",))},
        "huge": {"X-Padding": "x" * 9000},
        "unreachable": {},
    }[headers]
    response = client.open(path, method=method, headers=request_headers)
    assert response.status_code == status
    assert response.get_json()["error"] == {
        "code": status,
        "title": title,
        "message": response.get_json()["error"]["message"],
    }
    assert response.get_json()["error"]["message"]


def test_unknown_path_under_the_api_is_404_even_without_a_token(client, make_token):
    assert error_message(client.get("/v1.1/images/nothing/else"), 404)
    assert error_message(client.get("/v1.1/imagesdetail"), 404)
    # /v1.1/images/<id> is an image's path: a name that is no image id is a 404 too
    # (Glance's bad URLs, such as detail.json), once a token says who asks.
    headers = {"X-Auth-Token": make_token()}
    assert error_message(client.get("/v1.1/images/detail.json", headers=headers), 404)


def test_wrong_method_is_405_even_without_a_token(client):
    response = client.post("/v1.1/images/detail")
    assert error_message(response, 405)
    assert response.headers["Allow"] == "GET"
