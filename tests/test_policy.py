"""Who is an admin is a policy rule (context_is_admin), overridable by a policy file."""

import pytest

from app.config import ConfigurationError
from deploy.processes import ProcessFailed
from helpers import error_message, image_ids
from servers import start_service

EVERYONE = "/v1.1/images/detail?is_public=none"


@pytest.fixture
def images(make_image):
    """{name: id} of a public image and two projects' private ones."""
    return {
        "public": make_image(is_public=True, owner="p1"),
        "p1": make_image(is_public=False, owner="p1"),
        "ops": make_image(is_public=False, owner="ops"),
    }


def _policy(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def _sees(client, token):
    return set(image_ids(client.get(EVERYONE, headers={"X-Auth-Token": token})))


def test_by_default_the_admin_role_is_admin(client, images, make_token):
    assert _sees(client, make_token(project="p9", roles=["admin"])) == set(images.values())
    assert _sees(client, make_token(project="p9", roles=["member"])) == {images["public"]}


def test_a_policy_file_makes_another_role_the_admin(make_app, images, make_token, tmp_path):
    path = _policy(tmp_path, 'context_is_admin: "role:cloud_admin"\n')
    client = make_app(POLICY_FILE=path, ALLOWED_ROLES=["cloud_admin", "admin"]).test_client()
    assert _sees(client, make_token(project="p9", roles=["cloud_admin"])) == set(images.values())
    assert _sees(client, make_token(project="p9", roles=["admin"])) == {images["public"]}


def test_a_rule_on_the_project_makes_its_members_admins(make_app, images, make_token, tmp_path):
    path = _policy(tmp_path, 'context_is_admin: "role:admin and project_id:ops"\n')
    client = make_app(POLICY_FILE=path).test_client()
    assert _sees(client, make_token(project="ops", roles=["admin"])) == set(images.values())
    assert _sees(client, make_token(project="p1", roles=["admin"])) == {
        images["public"],
        images["p1"],
    }


def test_the_policy_decides_who_sees_other_projects_members(
    make_app, make_image, make_token, tmp_path
):
    image = make_image(is_public=False, owner="p1", members=["p2"])
    path = _policy(tmp_path, 'context_is_admin: "role:cloud_admin"\n')
    client = make_app(POLICY_FILE=path, ALLOWED_ROLES=["cloud_admin", "admin"]).test_client()
    members = f"/v1/images/{image}/members"
    admin = client.get(members, headers={"X-Auth-Token": make_token("p9", ["cloud_admin"])})
    assert [member["member_id"] for member in admin.get_json()["members"]] == ["p2"]
    other = client.get(members, headers={"X-Auth-Token": make_token("p9", ["admin"])})
    error_message(other, 404)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("context_is_admin: [role:admin\n", "is not valid"),
        ("- role:admin\n", "is not a mapping of rule names to rules"),
        ('context_is_admin: "role:admin and ("\n', "has a rule it cannot read"),
        ('context_is_admin: "rule:admins"\n', "refers to a rule it does not define"),
    ],
)
def test_a_broken_policy_file_stops_the_start_in_one_line(make_app, tmp_path, text, reason):
    path = _policy(tmp_path, text)
    with pytest.raises(ConfigurationError, match=f"the policy file {path} {reason}") as refused:
        make_app(POLICY_FILE=path)
    assert "\n" not in str(refused.value)


def test_a_missing_policy_file_is_the_default_rule(make_app, images, make_token, tmp_path):
    client = make_app(POLICY_FILE=str(tmp_path / "absent.yaml")).test_client()
    assert _sees(client, make_token(project="p9", roles=["admin"])) == set(images.values())


def test_the_policy_is_read_once_at_start(make_app, images, make_token, tmp_path):
    path = _policy(tmp_path, 'context_is_admin: "role:cloud_admin"\n')
    client = make_app(POLICY_FILE=path, ALLOWED_ROLES=["cloud_admin"]).test_client()
    with open(path, "w") as broken:
        broken.write("context_is_admin: [\n")
    token = make_token(project="p9", roles=["cloud_admin"])
    assert _sees(client, token) == set(images.values())


def test_gunicorn_exits_at_once_naming_a_broken_policy_file(database_url, tmp_path):
    path = _policy(tmp_path, "- role:admin\n")
    with pytest.raises(ProcessFailed) as failed:
        start_service(database_url, POLICY_FILE=path)
    assert f"image-catalogue: the policy file {path} is not a mapping" in str(failed.value)
