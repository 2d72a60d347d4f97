"""AUTH_STRATEGY=keystone, with keystonemiddleware's own fixture standing in for Keystone."""

import uuid

import pytest
from keystonemiddleware.fixture import AuthTokenFixture

from helpers import error_message, image_ids


@pytest.fixture
def keystone(make_app):
    tokens = AuthTokenFixture()
    tokens.setUp()
    app = make_app(
        AUTH_STRATEGY="keystone",
        KEYSTONE_AUTHTOKEN={"www_authenticate_uri": "http://keystone.invalid/identity"},
    )
    yield app.test_client(), tokens
    tokens.cleanUp()


def _token(tokens, project, role):
    token = uuid.uuid4().hex
    tokens.add_token_data(token_id=token, project_id=project, role_list=[role])
    return token


def test_keystone_token_gives_project_and_roles(keystone, make_image):
    client, tokens = keystone
    own = make_image(is_public=False, owner="p0")
    public = make_image(is_public=True, owner="p1")
    make_image(is_public=False, owner="p1")
    token = _token(tokens, "p0", "member")
    response = client.get("/v1.1/images/detail", headers={"X-Auth-Token": token})
    assert set(image_ids(response)) == {own, public}


def test_keystone_admin_lists_everything_with_is_public_none(keystone, make_image):
    client, tokens = keystone
    ids = {make_image(is_public=False, owner="p1"), make_image(is_public=True, owner="p2")}
    token = _token(tokens, "p0", "admin")
    response = client.get("/v1/images/detail?is_public=none", headers={"X-Auth-Token": token})
    assert set(image_ids(response)) == ids


def test_keystone_invalid_or_missing_token_is_401(keystone):
    client, _ = keystone
    error_message(client.get("/v1.1/images/detail", headers={"X-Auth-Token": "bogus"}), 401)
    error_message(client.get("/v1.1/images/detail"), 401)


def test_keystone_ignores_identity_headers_sent_by_the_client(keystone, make_image):
    client, _ = keystone
    make_image(is_public=False, owner="p0")
    forged = {
        "X-Auth-Token": "bogus",
        "X-Identity-Status": "Confirmed",
        "X-Project-Id": "p0",
        "X-Roles": "admin",
    }
    error_message(client.get("/v1.1/images/detail", headers=forged), 401)


def test_keystone_role_outside_allowed_roles_is_403(keystone):
    client, tokens = keystone
    token = _token(tokens, "p0", "observer")
    error_message(client.get("/v1.1/images/detail", headers={"X-Auth-Token": token}), 403)


def test_keystone_leaves_health_and_versions_open(keystone):
    client, _ = keystone
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 300


def test_unknown_auth_strategy_fails_at_startup(make_app):
    with pytest.raises(ValueError, match="AUTH_STRATEGY"):
        make_app(AUTH_STRATEGY="ldap")
