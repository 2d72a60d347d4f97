"""`tokens issue|list|revoke|purge`: what each does to the tokens a request can use."""

import re

import sqlalchemy as sa

from app.db import db, read
from app.models import ApiToken
from app.tokens import find_caller, hash_token, issue_token
from helpers import DETAIL, error_message, image_ids, import_line


def _caller(token):
    """The Caller a token stands for, looked up as a request does (inside an app context)."""
    found = read(lambda reader: find_caller(reader, hash_token(token)))
    return found and found[0]


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


def test_tokens_issue_without_project_and_with_ttl_0_never_expires(app, run, list_images):
    result = run("tokens", "issue", "--ttl", "0")
    assert result.exit_code == 0, result.output
    with app.app_context():
        row = db.session.execute(sa.text("SELECT project_id, expires_at FROM api_tokens")).one()
    assert tuple(row) == (None, None)
    public_id = "11111111-1111-4111-8111-111111111111"
    lines = [
        import_line(is_public=False, owner="p1", members=["p2"]),
        import_line(id=public_id, owner="p1"),
    ]
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


def test_tokens_revoke_by_token_and_by_project(app, make_app, make_token):
    client = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    runner = app.test_cli_runner()
    first, second, other = make_token("p1"), make_token("p1"), make_token("p2")
    result = runner.invoke(args=["tokens", "revoke", first])
    assert result.output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": first}), 401)
    assert client.get(DETAIL, headers={"X-Auth-Token": second}).status_code == 200
    assert runner.invoke(args=["tokens", "revoke", "--project", "p1"]).output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": second}), 401)
    assert client.get(DETAIL, headers={"X-Auth-Token": other}).status_code == 200
    assert runner.invoke(args=["tokens", "revoke"]).exit_code == 2


def test_a_token_starting_with_a_dash_is_revoked_after_double_dash(app, make_app):
    # Version 1.0 issued URL-safe base64 tokens, which may start with "-".
    legacy = "-w" + "x" * 41
    with app.app_context():
        db.session.add(ApiToken(token_hash=hash_token(legacy), project_id="p1", roles=["member"]))
        db.session.commit()
    client = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    assert client.get(DETAIL, headers={"X-Auth-Token": legacy}).status_code == 200
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", "--", legacy])
    assert result.output.strip() == "1"
    error_message(client.get(DETAIL, headers={"X-Auth-Token": legacy}), 401)


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


def test_an_empty_project_is_refused_and_an_old_token_of_it_sees_only_public_images(
    app, run, list_images
):
    refused = run("tokens", "issue", "--project", "")
    assert refused.exit_code == 2
    assert "an empty project id is no project" in refused.output
    private = import_line(id="33333333-3333-4333-8333-333333333333", is_public=False, owner=None)
    run("images", "import", "-", input=private + "\n")
    with app.app_context():
        # A token of project "" issued before the refusal, and an image it would have owned.
        token = issue_token(db.session, project_id="", roles=["member"], ttl_seconds=0)
        db.session.execute(sa.text("UPDATE images SET owner = ''"))
        db.session.commit()
    assert image_ids(list_images(token=token)) == []
