import pytest
import sqlalchemy as sa

from app.extensions import db
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
    app = make_app(
        SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1
    )
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
        db.session.execute(sa.text("SELECT pg_sleep(1)"))
        return {}

    error_message(slow_app.test_client().get("/slow"), 503)


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
