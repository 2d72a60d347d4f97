import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Image, ImageMember, ImageProperty
from app.tokens import find_caller
from helpers import image_ids

CIRROS_ID = "3c3d1d01-b48a-4639-8a88-08be3b9b5d78"


def _line(**overrides):
    record = {
        "id": CIRROS_ID,
        "name": "cirros",
        "size": 13167616,
        "virtual_size": None,
        "status": "active",
        "disk_format": "qcow2",
        "container_format": "bare",
        "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
        "created_at": "2016-05-22T06:04:20.425843",
        "updated_at": "2016-05-22T06:04:22.719791",
        "deleted_at": None,
        "deleted": False,
        "is_public": True,
        "protected": False,
        "min_ram": 0,
        "min_disk": 0,
        "owner": "23f4cb75768d4febb39542ef6fe169f3",
        "properties": {"os_distro": "cirros"},
        "members": ["project-b"],
    }
    return json.dumps({**record, **overrides})


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)

    return invoke


def _count(app, model):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_import_inserts_then_replaces_by_id(app, run, tmp_path, list_images):
    path = tmp_path / "images.jsonl"
    path.write_text(_line() + "\n" + _line(id="11111111-1111-4111-8111-111111111111") + "\n")
    result = run("images", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "2 inserted, 0 updated" in result.output

    path.write_text(_line(name="cirros-renamed", properties={"a": "1"}, members=[]) + "\n")
    result = run("images", "import", str(path))
    assert "0 inserted, 1 updated" in result.output
    images = list_images("name=cirros-renamed").get_json()["images"]
    assert [(image["id"], image["properties"]) for image in images] == [(CIRROS_ID, {"a": "1"})]
    assert _count(app, ImageMember) == 1  # only the second image's member is left


def test_import_reads_stdin(run, list_images):
    result = run("images", "import", "-", input=_line() + "\n")
    assert result.exit_code == 0, result.output
    assert image_ids(list_images("name=cirros")) == [CIRROS_ID]


def test_import_with_one_bad_line_changes_nothing(app, run, tmp_path):
    path = tmp_path / "images.jsonl"
    path.write_text(_line() + "\n")
    run("images", "import", str(path))
    lines = [_line(id=f"00000000-0000-4000-8000-{n:012d}", name=f"new-{n}") for n in range(5)]
    lines[3] = _line(id="00000000-0000-4000-8000-000000000099", size=-5)
    path.write_text("\n".join(lines + [_line(name="changed")]) + "\n")

    result = run("images", "import", str(path))

    assert result.exit_code == 1
    assert "line 4: size" in result.output
    assert _count(app, Image) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Image.name)) == "cirros"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ImageProperty)) == 1


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_line(status="exploded"), "status"),
        (_line(created_at="yesterday"), "created_at"),
        (_line(id="nope"), "id"),
        (_line(surprise=1), "surprise"),
        (_line(name="a\u0000b"), "NUL"),
        (_line(properties={"k": 5}), "properties"),
    ],
)
def test_import_reports_line_and_reason(app, run, tmp_path, bad_line, reason):
    path = tmp_path / "images.jsonl"
    path.write_text(_line(id="22222222-2222-4222-8222-222222222222") + "\n" + bad_line + "\n")
    result = run("images", "import", str(path))
    assert result.exit_code == 1
    assert "line 2:" in result.output and reason in result.output
    assert _count(app, Image) == 0


def test_import_rejects_duplicate_ids(app, run, tmp_path):
    path = tmp_path / "images.jsonl"
    path.write_text(_line() + "\n" + _line(name="again") + "\n")
    result = run("images", "import", str(path))
    assert result.exit_code == 1
    assert "line 2" in result.output and "line 1" in result.output
    assert _count(app, Image) == 0


def test_generate_is_deterministic_and_upserts(app, run):
    result = run("images", "generate", "--count", "300", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "300 inserted, 0 updated" in result.output
    with app.app_context():
        first = db.session.execute(
            sa.select(Image.id, Image.name, Image.size).order_by(Image.id)
        ).all()
        statuses = set(db.session.scalars(sa.select(Image.status)))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ImageProperty)) > 0
    assert {"active", "deleted"} <= statuses
    result = run("images", "generate", "--count", "300", "--seed", "7")
    assert "0 inserted, 300 updated" in result.output
    with app.app_context():
        again = db.session.execute(
            sa.select(Image.id, Image.name, Image.size).order_by(Image.id)
        ).all()
    assert again == first


def test_tokens_issue_prints_only_a_working_token(app, run):
    result = run("tokens", "issue", "--project", "p1", "--role", "admin", "--role", "member")
    assert result.exit_code == 0
    token = result.output.strip()
    assert result.output == token + "\n" and len(token) >= 40
    with app.app_context():
        caller = find_caller(db.session, token)
        stored = db.session.scalars(sa.text("SELECT token_hash FROM api_tokens")).all()
    assert caller.project_id == "p1" and caller.roles == {"admin", "member"}
    assert token not in stored


@pytest.mark.parametrize(
    "command",
    [
        ("images", "import"),
        ("images", "generate"),
        ("tokens", "issue"),
        ("db", "upgrade"),
    ],
)
def test_commands_have_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output
