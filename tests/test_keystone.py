"""AUTH_STRATEGY=keystone, with keystonemiddleware's own fixture standing in for Keystone."""

import uuid

import pytest
from keystonemiddleware.fixture import AuthTokenFixture

from app.config import ConfigurationError
from deploy.processes import free_port
from helpers import error_message, image_ids

SETTINGS = {
    "www_authenticate_uri": "http://keystone.invalid/identity",
    "auth_type": "password",
    "auth_url": "http://keystone.invalid/identity",
}


def _keystone_app(make_app, settings):
    """An app with auth_strategy = keystone and these [keystone_authtoken] options."""
    variables = {f"KEYSTONE_AUTHTOKEN_{name.upper()}": value for name, value in settings.items()}
    return make_app(AUTH_STRATEGY="keystone", **variables)


@pytest.fixture
def keystone(make_app):
    tokens = AuthTokenFixture()
    tokens.setUp()
    app = _keystone_app(make_app, SETTINGS)
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
    assert client.get("/healthcheck").status_code == 200
    assert client.get("/").status_code == 300


def test_unknown_auth_strategy_fails_at_startup(make_app):
    with pytest.raises(ConfigurationError, match="AUTH_STRATEGY"):
        make_app(AUTH_STRATEGY="ldap")


@pytest.mark.parametrize(
    "settings, missing",
    [
        ({}, r"needs \[keystone_authtoken\] www_authenticate_uri, auth_type$"),
        ({**SETTINGS, "auth_url": ""}, r"needs \[keystone_authtoken\] auth_url$"),
        (
            {"auth_type": "password"},
            r"needs \[keystone_authtoken\] www_authenticate_uri, auth_url$",
        ),
    ],
)
def test_keystone_without_its_settings_refuses_to_start(make_app, settings, missing):
    with pytest.raises(ConfigurationError, match=missing):
        _keystone_app(make_app, settings)


def test_keystone_with_an_unknown_auth_type_refuses_to_start(make_app):
    with pytest.raises(ConfigurationError, match="no keystoneauth plugin: 'passwort'"):
        _keystone_app(make_app, {**SETTINGS, "auth_type": "passwort"})


def test_unreachable_keystone_is_503_with_retry_after(make_app):
    # A loopback port nothing listens on: every validation attempt is refused.
    unreachable = {
        **SETTINGS,
        "auth_url": f"http://127.0.0.1:{free_port()}/identity",
        "username": "image-catalogue",
        "password": "unused",
        "user_domain_name": "Default",
        "project_name": "service",
        "project_domain_name": "Default",
    }
    client = _keystone_app(make_app, unreachable).test_client()
    response = client.get("/v1.1/images/detail", headers={"X-Auth-Token": uuid.uuid4().hex})
    assert "identity service" in error_message(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"].startswith("application/json")
    error_message(client.get("/v1.1/images/detail"), 401)
