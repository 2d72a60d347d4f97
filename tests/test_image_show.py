"""HEAD /v1/images/{id} (image-show) and GET /v1/images/{id}, as Glance v1 answered them."""

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db import db
from app.images.headers import META_HEADERS_MAX_BYTES
from helpers import BASE_TIME, CIRROS, error_message, headers_filled_line, image_ids

PATHS = ["/v1/images", "/v1.1/images"]


def _head(client, image_id, token, path="/v1/images", **options):
    return client.head(f"{path}/{image_id}", headers={"X-Auth-Token": token}, **options)


def _meta(response):
    """The x-image-meta-* headers, lower-cased, values as the bytes' UTF-8 text."""
    assert response.status_code == 200, response.status_code
    return {
        name.lower().removeprefix("x-image-meta-"): value.encode("latin-1").decode("utf-8")
        for name, value in response.headers.items()
        if name.lower().startswith("x-image-meta-")
    }


@pytest.mark.parametrize("path", PATHS)
def test_head_sends_every_field_as_glance_v1_did(client, make_image, make_token, path):
    image_id = make_image(
        name="cirros",
        checksum="64d7c1cd2b6f60c92c14662941cb7913",
        virtual_size=None,
        min_ram=512,
        properties={"os_distro": "cirros", "Kernel_ID": "k-1"},
    )
    response = _head(client, image_id, make_token(), path)
    assert response.get_data() == b""
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Etag"] == "64d7c1cd2b6f60c92c14662941cb7913"
    assert response.headers["X-Openstack-Request-Id"].startswith("req-")
    assert response.headers["X-Image-Meta-Disk_format"] == "qcow2"  # as eventlet capitalised
    assert _meta(response) == {
        "id": image_id,
        "name": "cirros",
        "status": "active",
        "size": "1000",
        "disk_format": "qcow2",
        "container_format": "bare",
        "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
        "created_at": "2024-01-01T00:00:00.000000",
        "updated_at": "2024-01-01T00:00:30.000000",
        "deleted": "False",
        "is_public": "True",
        "protected": "False",
        "min_ram": "512",
        "min_disk": "0",
        "owner": "owner-project",
        # Keys lower-cased, as Glance sent them; no deleted_at, virtual_size: they are null.
        "property-os_distro": "cirros",
        "property-kernel_id": "k-1",
    }


def test_values_that_are_not_ascii_go_as_utf_8_and_control_characters_escaped(
    client, make_image, make_token
):
    image_id = make_image(name="café 日本\nline", properties={"note": "ü", "clé": "v"})
    meta = _meta(_head(client, image_id, make_token()))
    assert meta["name"] == "café 日本%0Aline"
    assert meta["property-note"] == "ü"
    assert meta["property-cl%c3%a9"] == "v"


@pytest.mark.parametrize(
    "spelling",
    [str.upper, lambda text: text.replace("-", ""), lambda text: "{" + text + "}"],
    ids=["upper case", "no hyphens", "braces"],
)
def test_any_spelling_the_marker_accepts_names_the_image(client, make_image, make_token, spelling):
    image_id = make_image()
    assert _meta(_head(client, spelling(image_id), make_token()))["id"] == image_id


def _same_404(first, second):
    assert first.status_code == second.status_code == 404
    first_headers = {name for name, _ in first.headers.items() if name != "X-Openstack-Request-Id"}
    second_headers = {
        name for name, _ in second.headers.items() if name != "X-Openstack-Request-Id"
    }
    assert first_headers == second_headers and first.get_data() == second.get_data() == b""


def test_an_image_the_caller_may_not_see_is_the_same_404_as_none(client, make_image, make_token):
    secret = make_image(is_public=False, owner="p1")
    token = make_token(project="p0")
    _same_404(_head(client, secret, token), _head(client, uuid.uuid4(), token))


@pytest.mark.parametrize("bad_id", ["not-an-id", "1234", "x" * 4000, "%00"])
def test_malformed_and_very_long_ids_are_404(client, make_token, bad_id):
    token = make_token()
    _same_404(_head(client, bad_id, token), _head(client, uuid.uuid4(), token))


def test_deleted_images_show_to_those_the_listing_shows_them_to(client, make_image, make_token):
    deleted = make_image(
        is_public=False,
        owner="p1",
        members=["p2"],
        status="deleted",
        deleted=True,
        deleted_at=BASE_TIME,
        properties={"gone": "with it"},
    )
    owner = _meta(_head(client, deleted, make_token(project="p1")))
    assert owner["deleted"] == "True" and owner["status"] == "deleted"
    assert owner["deleted_at"] == "2024-01-01T00:00:00.000000"
    assert not any(name.startswith("property-") for name in owner)
    assert _meta(_head(client, deleted, make_token(project="p9", roles=("admin",))))
    assert _head(client, deleted, make_token(project="p2")).status_code == 404  # a member


def test_killed_and_hidden_images_show_to_their_owner(client, make_image, make_token):
    killed = make_image(is_public=False, owner="p1", status="killed")
    hidden = make_image(is_public=False, owner="p1", hidden=True)
    token = make_token(project="p1")
    assert _meta(_head(client, killed, token))["status"] == "killed"
    assert _meta(_head(client, hidden, token))["id"] == hidden


def test_a_project_without_images_sees_public_ones_only(client, make_image, make_token):
    public, private = make_image(), make_image(is_public=False, owner="p1")
    token = make_token(project="project-with-nothing")
    assert _head(client, public, token).status_code == 200
    assert _head(client, private, token).status_code == 404


def test_head_needs_a_token_and_ignores_a_body(client, make_image, make_token):
    image_id = make_image()
    assert client.head(f"/v1/images/{image_id}").status_code == 401
    response = _head(client, image_id, make_token(), data=b"x" * 100)
    assert _meta(response)["id"] == image_id


def test_head_of_the_listing_is_still_405(client, make_token):
    response = client.head("/v1/images/detail", headers={"X-Auth-Token": make_token()})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


def _get(client, image_id, token):
    return client.get(f"/v1/images/{image_id}", headers={"X-Auth-Token": token})


def test_get_redirects_to_the_image_services_data(make_app, make_image, make_token):
    image_id = make_image()
    client = make_app(IMAGE_SERVICE_URL="https://glance.example.com:9292/").test_client()
    response = _get(client, image_id, make_token())
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"https://glance.example.com:9292/v2/images/{image_id}/file"
    )


def test_get_without_an_image_service_says_where_data_is_served(client, make_image, make_token):
    image_id = make_image()
    message = error_message(_get(client, image_id, make_token()), 501)
    assert f"GET /v2/images/{image_id}/file" in message


@pytest.mark.parametrize(
    ("status", "code", "text"), [("queued", 404, "is not active"), ("deactivated", 403, "")]
)
def test_get_of_an_image_that_is_not_active(client, make_image, make_token, status, code, text):
    image_id = make_image(status=status)
    assert text in error_message(_get(client, image_id, make_token()), code)


def test_get_of_an_image_the_caller_may_not_see_is_404(client, make_image, make_token):
    secret = make_image(is_public=False, owner="p1")
    assert "No image found" in error_message(_get(client, secret, make_token("p0")), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/images"),
        ("PUT", "/v1/images/{id}"),
        ("DELETE", "/v1.1/images/{id}"),
        ("PUT", "/v1/images/{id}/members"),
        ("PUT", "/v1/images/{id}/members/p2"),
        ("DELETE", "/v1/images/{id}/members/p2"),
    ],
)
def test_writes_are_405_naming_why_and_where_writes_go_before_authentication(
    make_app, method, path
):
    # Local tokens: nothing Glance could take to carry a write out.
    client = make_app(IMAGE_SERVICE_URL="https://glance.example.com:9292").test_client()
    response = client.open(path.format(id=uuid.uuid4()), method=method)
    message = error_message(response, 405)
    assert "auth_strategy = keystone and [glance_mirror] connection" in message
    assert "https://glance.example.com:9292" in message
    assert "HEAD" in response.headers["Allow"] or response.headers["Allow"] == "GET"


image_spec = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(["p0", "p1", None]),
        "is_public": st.booleans(),
        "status": st.sampled_from(["active", "queued", "killed", "deleted"]),
        "members": st.lists(st.sampled_from(["p0", "p1"]), unique=True, max_size=2),
        "hidden": st.booleans(),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    catalogue=st.lists(image_spec, max_size=10),
    project=st.sampled_from(["p0", "p1", None]),
    role=st.sampled_from(["member", "admin"]),
)
def test_head_answers_200_exactly_for_what_the_listing_shows(
    app, client, make_image, make_token, list_images, catalogue, project, role
):
    with app.app_context():
        db.session.execute(sa.text("TRUNCATE images CASCADE"))
        db.session.commit()
    ids = []
    for number, spec in enumerate(catalogue):
        deleted = spec["status"] == "deleted"
        created = BASE_TIME + dt.timedelta(minutes=number)
        ids.append(make_image(**spec, deleted=deleted, deleted_at=created if deleted else None))
    token = make_token(project=project, roles=(role,))
    # The listing with nothing filtered out: changes-since (deleted, killed
    # and hidden images too) and, for an admin, every project's.
    query = "limit=1000&changes-since=2000-01-01" + ("&is_public=none" if role == "admin" else "")
    listed = set(image_ids(list_images(query, token=token)))
    shown = {image_id for image_id in ids if _head(client, image_id, token).status_code == 200}
    assert shown == listed


def test_imports_refuse_an_image_image_show_could_not_answer(run, client, make_token):
    limit = META_HEADERS_MAX_BYTES
    at_limit = headers_filled_line(limit, id="44444444-4444-4444-8444-444444444444")
    beyond = headers_filled_line(limit + 1, id="55555555-5555-4555-8555-555555555555")

    refused = run("images", "import", "-", input=at_limit + "\n" + beyond + "\n")
    assert refused.exit_code == 1
    assert f"line 2: its metadata would take {limit + 1} bytes of image-show headers" in (
        refused.output
    )
    assert run("images", "import", "-", input=at_limit + "\n").exit_code == 0
    response = _head(client, "44444444-4444-4444-8444-444444444444", make_token())
    assert response.status_code == 200
    meta = [(name, value) for name, value in response.headers if name.startswith("X-Image-Meta")]
    etag = len("Etag") + len(CIRROS["checksum"]) + 4  # counted with them: `name: value` CRLF
    assert sum(len(name) + len(value) + 4 for name, value in meta) + etag == limit
