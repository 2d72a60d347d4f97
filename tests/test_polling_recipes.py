"""docs/api.md's polling recipes, run as written against the service under gunicorn: each
poller's view ends equal to what the listing shows its caller, through shares, lost shares,
late and backdated loads, deletions."""

import datetime as dt

import pytest

from helpers import import_line, listed_images, polling_recipes

A, B, C = (f"{letter * 8}-0000-4000-8000-000000000000" for letter in "abc")
EPOCH = "1970-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def recipes():
    return polling_recipes()


def _now(minutes=0):
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def _import(run, *lines):
    result = run("images", "import", "-", input="".join(line + "\n" for line in lines))
    assert result.exit_code == 0, result.output


STEPS = [
    # (what happens, the import lines)
    ("new images", [import_line(id=A, owner="p1", is_public=False, updated_at=_now())]),
    (
        "a share",
        [import_line(id=A, owner="p1", is_public=False, members=["p2"], updated_at=_now())],
    ),
    ("a public image", [import_line(id=B, owner="p3", updated_at=_now())]),
    ("a share ends", [import_line(id=A, owner="p1", is_public=False, updated_at=_now(1))]),
    ("made private", [import_line(id=B, owner="p3", is_public=False, updated_at=_now(2))]),
    ("backdated", [import_line(id=C, owner="p1", updated_at="2020-01-01T00:00:00Z")]),
    (
        "deleted",
        [import_line(id=C, owner="p1", status="deleted", deleted=True, updated_at=_now(3))],
    ),
]


def test_each_recipe_keeps_each_callers_view_equal_to_the_listing(
    live_server, run, make_token, recipes
):
    callers = {
        name: make_token(project) for name, project in (("p1", "p1"), ("p2", "p2"), ("p3", "p3"))
    }
    callers["admin"] = make_token("p9", roles=("admin",))
    feed = {name: {"view": {}, "cursor": None} for name in callers}
    since = {name: {} for name in callers}
    etags = {name: {"images": None, "etag": None} for name in callers}
    for step, lines in STEPS:
        _import(run, *lines)
        for name, token in callers.items():
            poller = feed[name]
            poller["cursor"] = recipes["follow_feed"](
                live_server, token, poller["view"], poller["cursor"]
            )
            recipes["poll_changes_since"](live_server, token, since[name])
            images, etag = recipes["list_if_changed"](live_server, token, etags[name]["etag"])
            if images is not None:
                etags[name] = {"images": images, "etag": etag}
            everything = listed_images(
                live_server, token, **{"changes-since": EPOCH, "is_public": "none"}
            )
            assert poller["view"] == everything, (step, name, "feed")
            assert since[name]["view"] == everything, (step, name, "changes-since")
            assert etags[name]["images"] == list(listed_images(live_server, token).values()), (
                step,
                name,
                "If-None-Match",
            )


def _naive_poll(base_url, token, state):
    """What pollers do without the recipe: changes-since the newest updated_at seen."""
    params = {"changes-since": state.get("newest", EPOCH), "is_public": "none"}
    images = listed_images(base_url, token, **params)
    state.setdefault("view", {}).update(images)
    stamps = [image["updated_at"] for image in state["view"].values()]
    state["newest"] = max(stamps, default=EPOCH)


def test_without_the_recipe_changes_since_misses_changes(live_server, run, make_token):
    # The control: the same steps defeat a poller that asks from the newest updated_at.
    token, state, missed = make_token("p2"), {}, []
    for step, lines in STEPS:
        _import(run, *lines)
        _naive_poll(live_server, token, state)
        everything = listed_images(
            live_server, token, **{"changes-since": EPOCH, "is_public": "none"}
        )
        if state["view"] != everything:
            missed.append(step)
    assert "a share ends" in missed
