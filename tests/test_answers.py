"""ETags, 304s and answers given again: never after a change, without the query when unchanged."""

import pytest
import sqlalchemy as sa

from app.db import db
from app.db.reads import Reader
from app.web.answers import AnswerCache
from helpers import DETAIL, error_message, import_line

A, B = "aaaaaaaa-0000-4000-8000-000000000000", "bbbbbbbb-0000-4000-8000-000000000000"
PATHS = [DETAIL, "/v1/images", f"/v1/images/{A}/members", "/v1/images/changes"]


def _import(run, *lines):
    result = run("images", "import", "-", input="".join(line + "\n" for line in lines))
    assert result.exit_code == 0, result.output


def _get(client, path, token, etag=None):
    headers = {"X-Auth-Token": token}
    if etag is not None:
        headers["If-None-Match"] = etag
    return client.get(path, headers=headers)


@pytest.fixture
def statements(monkeypatch):
    """The SQL statements the read path sends, from now on."""
    sent = []
    rows = Reader.rows

    def recorded(self, sql, parameters=None):
        sent.append(sql)
        return rows(self, sql, parameters)

    monkeypatch.setattr(Reader, "rows", recorded)
    return sent


@pytest.mark.parametrize("path", PATHS)
def test_an_unchanged_answer_is_a_304_that_reads_one_row(client, run, make_token, path, statements):
    _import(run, import_line(id=A, owner="p1", members=["p2"]))
    token = make_token("p1")
    first = _get(client, path, token)
    assert first.status_code == 200 and first.headers["ETag"].startswith('"')
    statements.clear()
    again = _get(client, path, token, first.headers["ETag"])
    assert (again.status_code, again.get_data(), again.headers["ETag"]) == (
        304,
        b"",
        first.headers["ETag"],
    )
    # The token is cached; the change number is the only read.
    assert [sql.split("FROM", 1)[1].split()[0] for sql in statements] == ["catalogue_state"]


CHANGES = {
    "an image added": [import_line(id=B, owner="p1")],
    "a field changed": [import_line(id=A, owner="p1", members=["p2"], name="renamed")],
    "a property": [import_line(id=A, owner="p1", members=["p2"], properties={"k": "v"})],
    "a member added": [import_line(id=A, owner="p1", members=["p2", "p3"])],
    "a member removed": [import_line(id=A, owner="p1", members=[])],
    "can_share": [import_line(id=A, owner="p1", members=[{"member": "p2", "can_share": True}])],
    "hidden": [import_line(id=A, owner="p1", members=["p2"], hidden=True)],
    "deleted": [import_line(id=A, owner="p1", status="deleted", deleted=True)],
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("path", PATHS)
def test_every_kind_of_change_gives_a_200_and_a_new_etag(client, run, make_token, path, change):
    _import(run, import_line(id=A, owner="p1", members=["p2"]))
    token = make_token("p1")
    first = _get(client, path, token)
    _import(run, *CHANGES[change])
    after = _get(client, path, token, first.headers["ETag"])
    assert after.status_code in (200, 404), after.get_data(as_text=True)
    assert after.headers.get("ETag") != first.headers["ETag"]


def test_a_write_outside_the_catalogues_writers_changes_the_etag_too(app, client, run, make_token):
    _import(run, import_line(id=A, owner="p1"))
    token = make_token("p1")
    first = _get(client, DETAIL, token)
    with app.app_context():
        db.session.execute(sa.text("UPDATE images SET name = 'by hand'"))
        db.session.commit()
    after = _get(client, DETAIL, token, first.headers["ETag"])
    assert after.status_code == 200 and after.get_json()["images"][0]["name"] == "by hand"


def test_each_caller_and_each_question_has_its_own_etag(client, run, make_token):
    _import(run, import_line(id=A, owner="p1"))
    p1, p2, admin = make_token("p1"), make_token("p2"), make_token("p9", roles=("admin",))
    tags = {
        (token, path): _get(client, path, token).headers["ETag"]
        for token in (p1, p2, admin)
        for path in (DETAIL, f"{DETAIL}?limit=1", "/v1/images")
    }
    assert len(set(tags.values())) == len(tags)
    # Another token of the same project asks the same question.
    assert _get(client, DETAIL, make_token("p1")).headers["ETag"] == tags[(p1, DETAIL)]


def test_if_none_match_star_lists_and_garbage(client, run, make_token):
    _import(run, import_line(id=A))
    token = make_token("p1")
    etag = _get(client, DETAIL, token).headers["ETag"]
    assert _get(client, DETAIL, token, "*").status_code == 304
    assert _get(client, DETAIL, token, f'"other", {etag}').status_code == 304
    assert _get(client, DETAIL, token, f"W/{etag}").status_code == 304
    for garbage in ('"other"', "garbage", '"unterminated', ",,,", "\u00e9"):
        response = _get(client, DETAIL, token, garbage)
        assert response.status_code == 200 and response.headers["ETag"] == etag


def test_image_show_keeps_glances_etag_and_never_answers_304(client, run, make_token):
    _import(run, import_line(id=A))
    token = make_token("p1")
    shown = client.head(f"/v1/images/{A}", headers={"X-Auth-Token": token})
    assert shown.headers["Etag"] == "64d7c1cd2b6f60c92c14662941cb7913"
    again = client.head(
        f"/v1/images/{A}", headers={"X-Auth-Token": token, "If-None-Match": shown.headers["Etag"]}
    )
    assert again.status_code == 200


def test_a_repeated_question_is_answered_again_without_its_query(
    client, run, make_token, statements
):
    _import(run, import_line(id=A))
    token = make_token("p1")
    first = _get(client, DETAIL, token)
    statements.clear()
    again = _get(client, DETAIL, token)
    assert again.get_data() == first.get_data() and again.headers["ETag"] == first.headers["ETag"]
    assert len(statements) == 1 and "catalogue_state" in statements[0]


def test_a_change_is_seen_by_the_next_request_of_every_worker(make_app, app, run, make_token):
    workers = [make_app().test_client() for _ in range(2)]
    token = make_token("p1")
    _import(run, import_line(id=A, name="before"))
    for worker in workers:
        assert _get(worker, DETAIL, token).get_json()["images"][0]["name"] == "before"
    _import(run, import_line(id=A, name="after"))
    for worker in workers:
        assert _get(worker, DETAIL, token).get_json()["images"][0]["name"] == "after"


def test_answers_are_not_kept_with_answer_cache_bytes_0(make_app, app, run, make_token, statements):
    client = make_app(ANSWER_CACHE_BYTES=0).test_client()
    _import(run, import_line(id=A))
    token = make_token("p1")
    _get(client, DETAIL, token)
    statements.clear()
    assert _get(client, DETAIL, token).status_code == 200
    assert len(statements) == 2


def test_a_bad_request_is_still_a_400_whatever_if_none_match_says(client, make_token):
    response = _get(client, f"{DETAIL}?limit=-1", make_token(), "*")
    assert error_message(response, 400)


def test_the_answer_cache_keeps_recent_answers_within_its_bytes():
    cache = AnswerCache(max_bytes=10)
    cache.put("a", 1, b"1234")
    cache.put("b", 1, b"1234")
    assert cache.get("a", 1) == b"1234"  # now the most recent
    cache.put("c", 1, b"1234")  # pushes out b, the least recently used
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (b"1234", None, b"1234")
    assert cache.get("a", 2) is None  # an answer of an older change number is never given
    cache.put("big", 1, b"x" * 11)
    assert cache.get("big", 1) is None and cache.size <= 10
