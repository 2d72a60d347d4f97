import time

import pytest

from app.tokens import Caller, TokenCache
from helpers import DETAIL, error_message, image_ids


@pytest.mark.parametrize("path", [DETAIL, "/v1/images/detail", "/v1.1/images", "/v1/images"])
def test_missing_token_is_401(client, path):
    assert "authentication" in error_message(client.get(path), 401)


def test_unknown_token_is_401(client, make_token):
    make_token()
    error_message(client.get(DETAIL, headers={"X-Auth-Token": "made-up"}), 401)


def _run_sql(app, statement):
    from app.db import db

    with app.app_context():
        db.session.execute(db.text(statement))
        db.session.commit()


EXPIRE_ALL = "UPDATE api_tokens SET expires_at = now() - interval '1 second'"


def test_expired_token_is_401(client, app, make_token):
    token = make_token()
    _run_sql(app, EXPIRE_ALL)
    error_message(client.get(DETAIL, headers={"X-Auth-Token": token}), 401)


def test_unknown_and_expired_tokens_get_the_same_answer(client, app, make_token):
    expired = make_token()
    _run_sql(app, EXPIRE_ALL)
    first = client.get(DETAIL, headers={"X-Auth-Token": expired})
    second = client.get(DETAIL, headers={"X-Auth-Token": "never-issued"})
    assert first.get_json() == second.get_json()


def test_member_sees_public_and_own_images_only(list_images, make_image, make_token):
    public = make_image(is_public=True, owner="other")
    own_private = make_image(is_public=False, owner="project-a")
    make_image(is_public=False, owner="other")
    token = make_token(project="project-a")
    assert set(image_ids(list_images(token=token))) == {public, own_private}


def test_token_without_project_sees_public_images_only(list_images, make_image, make_token):
    public = make_image(is_public=True, owner="other")
    make_image(is_public=False, owner="other", members=["project-a"])
    make_image(is_public=False, owner=None)
    token = make_token(project=None)
    assert image_ids(list_images(token=token)) == [public]


def test_health_and_versions_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/versions").status_code == 300


def test_cached_token_works_until_the_cache_time_then_revocation_shows(make_app, make_token):
    cached = make_app(TOKEN_CACHE_SECONDS=3600).test_client()
    uncached = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    token = make_token()
    headers = {"X-Auth-Token": token}
    assert cached.get(DETAIL, headers=headers).status_code == 200
    assert uncached.get(DETAIL, headers=headers).status_code == 200
    _run_sql(cached.application, "DELETE FROM api_tokens")
    assert cached.get(DETAIL, headers=headers).status_code == 200
    error_message(uncached.get(DETAIL, headers=headers), 401)


def test_cached_token_still_stops_at_its_expiry(app, make_app, make_token):
    client = make_app(TOKEN_CACHE_SECONDS=3600).test_client()
    now = [time.time()]
    client.application.extensions["token_cache"].clock = lambda: now[0]
    headers = {"X-Auth-Token": make_token(ttl=600)}
    assert client.get(DETAIL, headers=headers).status_code == 200
    _run_sql(app, EXPIRE_ALL)
    assert client.get(DETAIL, headers=headers).status_code == 200  # answered from the cache
    now[0] += 601  # the cache's clock passes the token's expiry
    error_message(client.get(DETAIL, headers=headers), 401)


def test_token_cache_keeps_at_most_max_entries_dropping_the_oldest():
    cache = TokenCache(seconds=60, max_entries=3)
    for number in range(10):
        cache.put(f"digest-{number}", Caller(f"p{number}", frozenset({"member"})), None)
    assert len(cache) == 3
    assert cache.get("digest-0") is None
    assert [cache.get(f"digest-{number}").project_id for number in (7, 8, 9)] == ["p7", "p8", "p9"]


def test_unknown_tokens_are_never_cached(make_app):
    client = make_app(TOKEN_CACHE_SECONDS=3600).test_client()
    for number in range(5):
        client.get(DETAIL, headers={"X-Auth-Token": f"guess-{number}"})
    assert len(client.application.extensions["token_cache"]) == 0
