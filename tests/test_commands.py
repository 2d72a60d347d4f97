import json
import re

import pytest
import sqlalchemy as sa

from app.db import db, read
from app.models import ApiToken, Image, ImageMember, ImageProperty
from app.tokens import find_caller, hash_token
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


def _caller(token):
    """The Caller a token stands for, looked up as a request does (inside an app context)."""
    found = read(lambda reader: find_caller(reader, hash_token(token)))
    return found and found[0]


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
    assert "0 inserted, 0 updated, 300 unchanged" in result.output
    with app.app_context():
        again = db.session.execute(
            sa.select(Image.id, Image.name, Image.size).order_by(Image.id)
        ).all()
    assert again == first


def test_tokens_issue_prints_only_a_working_token(app, run):
    result = run("tokens", "issue", "--project", "p1", "--role", "admin", "--role", "member")
    assert result.exit_code == 0
    token = result.output.strip()
    # Hex, so it never starts with "-" and cannot pass for an option on a command line.
    assert result.output == token + "\n" and re.fullmatch("[0-9a-f]{64}", token)
    with app.app_context():
        caller = _caller(token)
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


def test_tokens_issue_without_project_and_with_ttl_0_never_expires(app, run, list_images):
    result = run("tokens", "issue", "--ttl", "0")
    assert result.exit_code == 0, result.output
    with app.app_context():
        row = db.session.execute(sa.text("SELECT project_id, expires_at FROM api_tokens")).one()
    assert tuple(row) == (None, None)
    public_id = "11111111-1111-4111-8111-111111111111"
    lines = [_line(is_public=False, owner="p1", members=["p2"]), _line(id=public_id, owner="p1")]
    run("images", "import", "-", input="\n".join(lines) + "\n")
    assert image_ids(list_images(token=result.output.strip())) == [public_id]


def test_tokens_list_shows_ids_never_tokens_and_revoke_takes_an_id(app, run, make_token):
    kept = make_token(project="p1", roles=("admin", "member"))
    revoked = make_token(project="p2")
    with app.app_context():
        db.session.execute(sa.text("UPDATE api_tokens SET expires_at = NULL"))
        db.session.commit()
    listing = run("tokens", "list")
    assert listing.exit_code == 0, listing.output
    assert kept not in listing.output and revoked not in listing.output
    lines = listing.output.splitlines()
    assert lines[0].split() == ["ID", "PROJECT", "ROLES", "CREATED", "EXPIRES"]
    by_project = {line.split()[1]: line.split() for line in lines[1:]}
    assert by_project["p1"][2] == "admin,member" and by_project["p1"][-1] == "never"
    assert run("tokens", "revoke", "--id", by_project["p2"][0]).output.strip() == "1"
    with app.app_context():
        assert _caller(revoked) is None
        assert _caller(kept).project_id == "p1"
    assert run("tokens", "revoke", "--id", "abc").output.strip() == "0"  # too short to name one


def test_revoke_by_an_id_two_tokens_share_revokes_neither(app, run):
    shared = "0123456789ab"
    with app.app_context():
        for rest in ("c" * 52, "d" * 52):
            db.session.add(ApiToken(token_hash=shared + rest, project_id="p1", roles=["member"]))
        db.session.commit()
    result = run("tokens", "revoke", "--id", shared)
    assert result.exit_code == 1
    assert f"id {shared} matches 2 tokens: give more characters of it" in result.output
    assert run("tokens", "revoke", "--id", shared + "c").output.strip() == "1"
    with app.app_context():
        assert db.session.scalars(sa.text("SELECT token_hash FROM api_tokens")).all() == [
            shared + "d" * 52
        ]


def test_tokens_purge_deletes_only_expired_tokens(app, run, make_token):
    live, forever, expired = make_token(), make_token(ttl=0), make_token()
    with app.app_context():
        db.session.execute(
            sa.text(
                "UPDATE api_tokens SET expires_at = now() - interval '1 minute'"
                " WHERE token_hash = :h"
            ),
            {"h": hash_token(expired)},
        )
        db.session.commit()
    assert "(expired)" in run("tokens", "list").output
    assert run("tokens", "purge").output.strip() == "1"
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM api_tokens")) == 2
        assert _caller(live) and _caller(forever)


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
        SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1
    ).test_cli_runner()
    for command in (["images", "import", "-"], ["tokens", "list"], ["tokens", "purge"]):
        result = runner.invoke(args=command, input=_line() + "\n")
        assert result.exit_code == 1, result.output
        assert "Error: the catalogue's database could not be reached" in result.output
        assert "Traceback" not in result.output
