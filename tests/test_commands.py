import json

import pytest
import sqlalchemy as sa

from app.db import db
from app.models import Image, ImageMember, ImageProperty
from helpers import CIRROS, image_ids, import_line

CIRROS_ID = CIRROS["id"]


def _line(**overrides):
    return import_line(
        **{"properties": {"os_distro": "cirros"}, "members": ["project-b"], **overrides}
    )


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
        (_line(owner=""), "owner: must be a project id of 1 to 255 characters"),
        (_line(members=[""]), "an empty one is no project"),
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
    assert "0 inserted, 0 updated, 300 unchanged" in result.output
    with app.app_context():
        again = db.session.execute(
            sa.select(Image.id, Image.name, Image.size).order_by(Image.id)
        ).all()
    assert again == first


@pytest.mark.parametrize(
    "command",
    [
        ("images", "import"),
        ("images", "generate"),
        ("tokens", "issue"),
        ("db", "upgrade"),
        ("images", "sync-glance"),
        ("tokens", "list"),
        ("tokens", "purge"),
    ],
)
def test_commands_have_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


ESCAPES = "tab\there new\nline cr\rhere back\\slash literal \\N and \\\\N end\\"


def test_import_round_trips_copy_escapes_in_names_and_properties(run, list_images):
    line = _line(name=ESCAPES, properties={"key\\with\ttab": ESCAPES, "nul-like": "\\N"})
    result = run("images", "import", "-", input=line + "\n")
    assert result.exit_code == 0, result.output
    (image,) = list_images().get_json()["images"]
    assert image["name"] == ESCAPES
    assert image["properties"] == {"key\\with\ttab": ESCAPES, "nul-like": "\\N"}


def test_import_keeps_a_member_named_twice_once(app, run, list_images, make_token):
    line = _line(is_public=False, owner="p1", members=["p2", "p2", "p3"])
    assert run("images", "import", "-", input=line + "\n").exit_code == 0
    with app.app_context():
        members = db.session.scalars(sa.select(ImageMember.member).order_by(ImageMember.member))
        assert list(members) == ["p2", "p3"]
    assert image_ids(list_images(token=make_token(project="p2"))) == [CIRROS_ID]


def test_import_shows_the_first_20_errors_and_counts_the_rest(app, run):
    lines = [_line(id=f"00000000-0000-4000-8000-{n:012d}", size=-n - 1) for n in range(27)]
    result = run("images", "import", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    assert "27 invalid line(s)" in result.output
    assert "line 20: size" in result.output and "line 21:" not in result.output
    assert "... and 7 more" in result.output
    assert _count(app, Image) == 0


def test_import_skips_blank_lines_and_numbers_lines_as_in_the_file(run):
    text = "\n" + _line() + "\n   \n" + _line(id="nope") + "\n\n"
    result = run("images", "import", "-", input=text)
    assert result.exit_code == 1
    assert "line 4: id" in result.output


def test_import_reads_time_zones_and_takes_naive_times_as_utc(run, list_images):
    line = _line(
        created_at="2016-05-22T08:04:20.425843+02:00",
        updated_at="2016-05-22T06:04:22.719791",
        deleted_at=None,
    )
    assert run("images", "import", "-", input=line + "\n").exit_code == 0
    (image,) = list_images().get_json()["images"]
    assert image["created_at"] == "2016-05-22T06:04:20.425843"
    assert image["updated_at"] == "2016-05-22T06:04:22.719791"


def test_import_of_blank_input_changes_nothing(run):
    result = run("images", "import", "-", input="\n\n")
    assert result.exit_code == 0, result.output
    assert "0 inserted, 0 updated, 0 unchanged" in result.output


def test_check_plans_exit_status_follows_max_ms(run):
    assert run("images", "generate", "--count", "200", "--seed", "3").exit_code == 0
    passed = run("images", "check-plans", "--max-ms", "60000")
    assert passed.exit_code == 0, passed.output
    assert "0 failed" in passed.output
    failed = run("images", "check-plans", "--max-ms", "0")
    assert failed.exit_code == 1
    assert "FAIL" in failed.output and "limit 0.0 ms" in failed.output


def test_loading_the_same_images_again_writes_nothing(app, run):
    lines = "\n".join(
        _line(id=f"00000000-0000-4000-8000-{n:012d}", properties={"k": str(n)}, members=["m"])
        for n in range(5)
    )
    assert run("images", "import", "-", input=lines + "\n").exit_code == 0

    def row_versions():
        with app.app_context():
            return [
                db.session.scalars(sa.text(f"SELECT xmin::text FROM {table} ORDER BY 1")).all()
                for table in ("images", "image_properties", "image_members")
            ]

    before = row_versions()
    result = run("images", "import", "-", input=lines + "\n")
    assert "0 inserted, 0 updated, 5 unchanged" in result.output
    assert row_versions() == before


@pytest.mark.parametrize(
    "change",
    [{"name": "renamed"}, {"properties": {"k": "other"}}, {"properties": {}}, {"members": []}],
)
def test_a_change_to_fields_properties_or_members_counts_as_updated(run, change):
    original = _line(properties={"k": "v"}, members=["m"], is_public=False)
    assert run("images", "import", "-", input=original + "\n").exit_code == 0
    changed = json.dumps({**json.loads(original), **change})
    result = run("images", "import", "-", input=changed + "\n")
    assert "0 inserted, 1 updated, 0 unchanged" in result.output


def test_a_command_whose_database_is_unreachable_says_so_in_one_line(make_app):
    runner = make_app(
        DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1
    ).test_cli_runner()
    for command in (["images", "import", "-"], ["tokens", "list"], ["tokens", "purge"]):
        result = runner.invoke(args=command, input=_line() + "\n")
        assert result.exit_code == 1, result.output
        assert "Error: the catalogue's database could not be reached" in result.output
        assert "Traceback" not in result.output
