"""Glance v1's members API: an image's members, one membership, what is shared with a project."""

import uuid

import pytest

from helpers import BASE_TIME, error_message


def _get(client, path, token):
    return client.get(path, headers={"X-Auth-Token": token})


def _members(client, image_id, token, path="/v1/images"):
    response = _get(client, f"{path}/{image_id}/members", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _shared(client, project, token):
    response = _get(client, f"/v1/shared-images/{project}", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def shared(run):
    """An image of p1 shared with p2 (who may share it on) and p3."""
    image_id = str(uuid.uuid4())
    line = (
        f'{{"id": "{image_id}", "status": "active", "created_at": "2024-01-01T00:00:00Z",'
        ' "owner": "p1", "members": [{"member": "p2", "can_share": true}, "p3"]}\n'
    )
    assert run("images", "import", "-", input=line).exit_code == 0
    return image_id


@pytest.mark.parametrize("path", ["/v1/images", "/v1.1/images"])
def test_the_owner_and_admins_see_every_member(client, make_token, shared, path):
    every = {
        "members": [
            {"member_id": "p2", "can_share": True},
            {"member_id": "p3", "can_share": False},
        ]
    }
    assert _members(client, shared, make_token("p1"), path) == every
    assert _members(client, shared, make_token("p9", roles=("admin",)), path) == every


def test_a_member_sees_its_own_membership_only(client, make_token, shared):
    assert _members(client, shared, make_token("p3")) == {
        "members": [{"member_id": "p3", "can_share": False}]
    }


def test_others_who_may_see_the_image_see_no_member(client, make_image, make_token):
    public = make_image(members=["p2"])
    assert _members(client, public, make_token("p8")) == {"members": []}


def test_the_members_of_an_image_the_caller_may_not_see_are_404(client, make_token, shared):
    hidden = _get(client, f"/v1/images/{shared}/members", make_token("p8"))
    missing = _get(client, f"/v1/images/{uuid.uuid4()}/members", make_token("p8"))
    assert error_message(hidden, 404).replace(shared, "X") == error_message(missing, 404).replace(
        missing.request.path.split("/")[3], "X"
    )


def test_the_members_of_a_deleted_image_are_404_even_to_admins(client, make_image, make_token):
    deleted = make_image(owner="p1", status="deleted", deleted=True, deleted_at=BASE_TIME)
    admin = make_token("p9", roles=("admin",))
    assert error_message(_get(client, f"/v1/images/{deleted}/members", admin), 404)


def test_admins_see_the_empty_member_list_of_a_pending_delete_image(client, make_image, make_token):
    # Glance v1's 404 was for status deleted only; deleting ended the memberships.
    pending = make_image(owner="p1", status="pending_delete", deleted=True, deleted_at=BASE_TIME)
    assert _members(client, pending, make_token("p9", roles=("admin",))) == {"members": []}
    assert error_message(_get(client, f"/v1/images/{pending}/members", make_token("p1")), 404)


def test_one_membership(client, make_token, shared):
    owner, member, other = make_token("p1"), make_token("p3"), make_token("p2")
    answer = _get(client, f"/v1/images/{shared}/members/p3", owner)
    assert answer.get_json() == {"member": {"member_id": "p3", "can_share": False}}
    assert _get(client, f"/v1/images/{shared}/members/p3", member).status_code == 200
    # p2 sees the image but not p3's membership; nobody is p4's.
    assert error_message(_get(client, f"/v1/images/{shared}/members/p3", other), 404)
    assert error_message(_get(client, f"/v1/images/{shared}/members/p4", owner), 404)


def test_shared_images_to_admins_to_the_member_and_to_others(
    client, make_image, make_token, shared
):
    elsewhere = make_image(is_public=False, owner="p5", members=["p3"])
    everything = {
        "shared_images": sorted(
            [
                {"image_id": shared, "can_share": False},
                {"image_id": elsewhere, "can_share": False},
            ],
            key=lambda image: image["image_id"],
        )
    }
    assert _shared(client, "p3", make_token("p9", roles=("admin",))) == everything
    assert _shared(client, "p3", make_token("p3")) == everything
    # Another project learns only of its own images shared with p3.
    assert _shared(client, "p3", make_token("p1")) == {
        "shared_images": [{"image_id": shared, "can_share": False}]
    }
    assert _shared(client, "p3", make_token("p7")) == {"shared_images": []}


def test_a_project_with_nothing_shared_and_no_token(client, make_token):
    assert _shared(client, "nobody", make_token("nobody")) == {"shared_images": []}
    assert client.get("/v1/shared-images/p3").status_code == 401


def test_memberships_of_deleted_images_are_not_shared_images(client, make_image, make_token):
    make_image(owner="p1", members=["p3"], status="deleted", deleted=True, deleted_at=BASE_TIME)
    assert _shared(client, "p3", make_token("p3")) == {"shared_images": []}


def test_a_member_object_without_its_project_is_an_invalid_line(run):
    line = (
        f'{{"id": "{uuid.uuid4()}", "status": "active", "created_at": "2024-01-01",'
        ' "members": ["p1", {"can_share": true}]}\n'
    )
    result = run("images", "import", "-", input=line)
    assert result.exit_code == 1
    assert "line 1: members: 1: member: Missing data for required field." in result.output


@pytest.mark.parametrize(
    "path", ["/v1/images/{id}/members", "/v1/images/{id}/members/p2", "/v1/shared-images/p2"]
)
def test_member_answers_are_the_bytes_flask_wrote_before_they_were_given_again(
    app, client, make_token, shared, path
):
    response = _get(client, path.format(id=shared), make_token("p1"))
    assert response.status_code == 200
    with app.app_context():
        assert response.data == app.json.response(response.get_json()).data
