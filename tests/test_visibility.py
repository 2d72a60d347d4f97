import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db import db
from helpers import BASE_TIME, error_message, image_ids

PROJECTS = ["p0", "p1", "p2"]


def test_member_sees_private_images_shared_with_its_project(list_images, make_image, make_token):
    shared = make_image(is_public=False, owner="p1", members=["p0"])
    make_image(is_public=False, owner="p1", members=["p2"])
    assert image_ids(list_images(token=make_token(project="p0"))) == [shared]


def test_members_of_a_deleted_image_no_longer_see_it(list_images, make_image, make_token):
    owner_token, member_token = make_token(project="p1"), make_token(project="p0")
    deleted = make_image(
        is_public=False,
        owner="p1",
        members=["p0"],
        status="deleted",
        deleted=True,
        deleted_at=BASE_TIME,
    )
    since = "changes-since=2000-01-01"
    assert image_ids(list_images(since, token=owner_token)) == [deleted]
    assert image_ids(list_images(since, token=member_token)) == []


def test_non_admin_is_public_is_validated_but_ignored(list_images, make_image, make_token):
    public = make_image(is_public=True, owner="other")
    own = make_image(is_public=False, owner="p0")
    token = make_token(project="p0")
    for value in ["false", "none", "TRUE", "0"]:
        assert set(image_ids(list_images(f"is_public={value}", token=token))) == {public, own}
    assert "is_public got maybe" in error_message(list_images("is_public=maybe", token=token), 400)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", {"public", "own"}),
        ("is_public=true", {"public", "own"}),
        ("is_public=True", {"public", "own"}),
        ("is_public=1", {"public", "own"}),
        ("is_public=none", {"public", "own", "other_private", "shared"}),
        ("is_public=None", {"public", "own", "other_private", "shared"}),
        ("is_public=false", {"own", "other_private", "shared"}),
        ("is_public=0", {"own", "other_private", "shared"}),
    ],
)
def test_admin_visibility_follows_is_public(list_images, make_image, make_token, query, expected):
    ids = {
        "public": make_image(is_public=True, owner="other"),
        "own": make_image(is_public=False, owner="admin-project"),
        "other_private": make_image(is_public=False, owner="other"),
        "shared": make_image(is_public=False, owner="other", members=["somebody"]),
    }
    token = make_token(project="admin-project", roles=("admin",))
    assert set(image_ids(list_images(query, token=token))) == {ids[name] for name in expected}


def test_token_role_outside_the_allowed_roles_is_403(list_images, make_token):
    token = make_token(roles=("observer",))
    assert error_message(list_images(token=token), 403)


def test_allowed_roles_are_configurable(make_app, make_token):
    app = make_app(ALLOWED_ROLES=["observer"])
    client = app.test_client()
    observer, member = make_token(roles=("observer",)), make_token(roles=("member",))
    assert client.get("/v1.1/images", headers={"X-Auth-Token": observer}).status_code == 200
    assert client.get("/v1.1/images", headers={"X-Auth-Token": member}).status_code == 403


def test_deleted_marker_needs_admin_or_changes_since(list_images, make_image, make_token):
    make_image(created_at=BASE_TIME - dt.timedelta(days=1))
    deleted = make_image(status="deleted", deleted=True, deleted_at=BASE_TIME, owner="p0")
    member, admin = make_token(project="p0"), make_token(project="p0", roles=("admin",))
    assert "Invalid marker" in error_message(list_images(f"marker={deleted}", token=member), 400)
    assert len(image_ids(list_images(f"marker={deleted}", token=admin))) == 1
    since = f"marker={deleted}&changes-since=2000-01-01"
    assert len(image_ids(list_images(since, token=member))) == 1


image_spec = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(PROJECTS + [None]),
        "is_public": st.booleans(),
        "status": st.sampled_from(["active", "queued", "killed", "deleted"]),
        "members": st.lists(st.sampled_from(PROJECTS), unique=True, max_size=3),
    }
)


def _may_see(image, project, changes_since):
    deleted = image["status"] == "deleted"
    if not changes_since and (deleted or image["status"] == "killed"):
        return False
    if image["is_public"]:
        return True
    if project is None:
        return False
    return image["owner"] == project or (project in image["members"] and not deleted)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    catalogue=st.lists(image_spec, max_size=12),
    project=st.sampled_from(PROJECTS + [None]),
    changes_since=st.booleans(),
    role=st.sampled_from(["member", "reader", "_member_"]),
)
def test_non_admin_sees_exactly_what_it_may(
    app, list_images, make_image, make_token, catalogue, project, changes_since, role
):
    with app.app_context():
        db.session.execute(sa.text("TRUNCATE images CASCADE"))
        db.session.commit()
    expected = set()
    for spec in catalogue:
        deleted = spec["status"] == "deleted"
        image_id = make_image(**spec, deleted=deleted, deleted_at=BASE_TIME if deleted else None)
        if _may_see(spec, project, changes_since):
            expected.add(image_id)
    query = "limit=1000" + ("&changes-since=2000-01-01" if changes_since else "")
    found = image_ids(list_images(query, token=make_token(project=project, roles=(role,))))
    assert len(found) == len(set(found))
    assert set(found) == expected


def test_errors_reveal_nothing_about_other_projects_images(list_images, make_image, make_token):
    secret = make_image(name="secret-plan", is_public=False, owner="p1")
    unknown = "00000000-0000-4000-8000-000000000000"
    token = make_token(project="p0")
    hidden = list_images(f"marker={secret}", token=token)
    missing = list_images(f"marker={unknown}", token=token)
    assert error_message(hidden, 400).replace(secret, "ID") == error_message(missing, 400).replace(
        unknown, "ID"
    )
    assert "secret-plan" not in hidden.get_data(as_text=True)
