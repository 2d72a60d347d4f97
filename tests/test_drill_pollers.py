"""Chaos drill: pollers never miss a change.

While the Glance follower mirrors a Glance database whose transactions commit
out of timestamp order, two `images import` processes load images (shares
and lost shares, images made private, images dated years back, deletions)
and Glance's own members change, three pollers per caller follow the
service under gunicorn with docs/api.md's recipes: the change feed,
changes-since with the documented recipe, and If-None-Match re-lists. At the
end each poller's view equals, image by image, what the listing shows its
caller.
"""

import datetime as dt
import os
import random

import pytest

from app.db import db
from app.loading import mirror
from app.models import CatalogueState
from app.tokens import issue_token
from deploy.commands import run_catalogue
from glance_database import GlanceDatabase
from helpers import BackgroundLoop, import_line, listed_images, polling_recipes
from mirroring import source_of, start_follower, with_reader
from servers import start_service

pytestmark = pytest.mark.drill
EPOCH = "1970-01-01T00:00:00Z"
CALLERS = {
    "owner": ("p-owner", "member"),
    "member": ("p-member", "member"),
    "admin": ("p9", "admin"),
}


RECIPES = polling_recipes()


class GlanceWriter(BackgroundLoop):
    """Changes Glance as its API would, some transactions committing after later ones."""

    def __init__(self, glance, operations):
        super().__init__()
        self.glance, self.operations, self.rng = glance, operations, random.Random(11)
        self.done = 0
        # Images p-member is a member of (whether or not their visibility counts it).
        self.shared = set()

    def run(self):
        glance, ids = self.glance, []
        for number in range(self.operations):
            if not self.running:
                return
            live = [image for image in ids if not glance.v1[image]["deleted"]]
            action = self.rng.choice(
                ["create"] * 3 + ["share", "unshare", "rename", "late", "delete"]
            )
            if action == "create" or len(live) < 2:
                shared = self.rng.random() < 0.5
                ids.append(
                    glance.image(
                        visibility=self.rng.choice(["public", "shared", "private"]),
                        owner=self.rng.choice(["p-owner", "p-other"]),
                        name=f"glance-{number}",
                        members={"p-member": "accepted"} if shared else {},
                    )
                )
                if shared:
                    self.shared.add(ids[-1])
            elif action == "share":
                target = self.rng.choice(live)
                if target not in self.shared:
                    glance.add_member(target, "p-member", "accepted")
                    self.shared.add(target)
            elif action == "unshare":
                target = self.rng.choice(live)
                if target in self.shared:
                    glance.remove_member(target, "p-member")
                    self.shared.discard(target)
            elif action == "rename":
                glance.update_image(self.rng.choice(live), name=f"renamed-{number}")
            elif action == "late":
                first, second = self.rng.sample(live, 2)
                _commit_late(glance, first, second, number)
            else:
                target = self.rng.choice(live)
                glance.delete_image(target)
                self.shared.discard(target)
            self.done += 1


def _commit_late(glance, first, second, number):
    """Rename `first` in a transaction that commits after `second`'s later rename."""
    stamp = glance.tick()
    with glance.engine.connect() as late:
        transaction = late.begin()
        late.execute(
            glance.images.update()
            .where(glance.images.c.id == first)
            .values(name=f"late-{number}", updated_at=stamp)
        )
        glance.update_image(second, name=f"early-{number}")
        transaction.commit()
    glance.v1[first].update(name=f"late-{number}", updated_at=stamp.isoformat())


class Importer(BackgroundLoop):
    """`images import --source NAME` processes, one after another: its own images changing."""

    def __init__(self, environment, source, seed, rounds):
        super().__init__()
        self.environment, self.source, self.rounds = environment, source, rounds
        self.rng = random.Random(seed)
        self.images = {}
        self.done = 0

    def run(self):
        for number in range(self.rounds):
            if not self.running:
                return
            # One line per image: the last change of the round to it.
            lines = dict(self._changed(number) for _ in range(self.rng.randint(1, 4)))
            run_catalogue(
                *("images", "import", "--source", self.source, "-"),
                env=self.environment,
                input="\n".join(lines.values()) + "\n",
                check=True,
                capture_output=True,
            )
            self.done += 1

    def _changed(self, number):
        """(id, import line) of one image of this importer, new or changed: shared, unshared,
        made private or public, dated years back, deleted."""
        rng = self.rng
        if not self.images or rng.random() < 0.3:
            image_id = (
                f"{self.source[-1]}{number:07d}-{rng.randint(0, 9999):04d}-4000-8000-000000000000"
            )
            self.images[image_id] = {"owner": rng.choice(["p-owner", "p-other"]), "members": []}
        image_id = rng.choice(sorted(self.images))
        image = self.images[image_id]
        change = rng.choice(["share", "unshare", "private", "public", "old", "delete", "rename"])
        now = dt.datetime.now(dt.UTC)
        fields = {"updated_at": now.isoformat(), "name": f"{self.source}-{number}"}
        if change == "share":
            image["members"] = ["p-member"]
        elif change == "unshare":
            image["members"] = []
        elif change in ("private", "public"):
            image["is_public"] = change == "public"
        elif change == "old":
            fields["updated_at"] = "2019-06-01T00:00:00Z"  # loaded with a date years back
        elif change == "delete":
            image.update(status="deleted", deleted=True, deleted_at=now.isoformat(), members=[])
        return image_id, import_line(id=image_id, **{**image, **fields})


class Poller(BackgroundLoop):
    """One caller's three pollers, polling in turn until the `with` block ends."""

    def __init__(self, base_url, token):
        super().__init__()
        self.base_url, self.token = base_url, token
        self.feed, self.cursor = {}, None
        self.since = {}
        self.listed, self.etag = None, None
        self.polls = 0
        # Changes each poller saw: images that appeared, changed or left its view.
        self.seen = {"feed": 0, "changes-since": 0, "If-None-Match": 0}
        self.error = None

    def run(self):
        try:
            while self.running:
                self.poll()
                self.stop.wait(0.1)  # pacing, so that writers get the cores too
        except Exception as error:  # the test reads it
            self.error = error

    def poll(self):
        before = dict(self.feed)
        self.cursor = RECIPES["follow_feed"](self.base_url, self.token, self.feed, self.cursor)
        self.seen["feed"] += _changes(before, self.feed)
        before = dict(self.since.get("view", {}))
        RECIPES["poll_changes_since"](self.base_url, self.token, self.since)
        self.seen["changes-since"] += _changes(before, self.since["view"])
        listed, self.etag = RECIPES["list_if_changed"](
            self.base_url, self.token, self.etag, {"limit": 1000}
        )
        if listed is not None:
            before = {image["id"]: image for image in self.listed or []}
            self.seen["If-None-Match"] += _changes(before, {image["id"]: image for image in listed})
            self.listed = listed
        self.polls += 1


def _changes(before, after):
    """How many images appeared in, changed in or left a view."""
    return sum(before.get(key) != after.get(key) for key in before.keys() | after.keys())


def _last_change(app):
    with app.app_context():
        return db.session.get(CatalogueState, 1).last_change


def test_pollers_never_miss_a_change(mirror_app, glance_url, tmp_path):
    glance = GlanceDatabase(glance_url)
    glance.clock = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    url = mirror_app.config["SQLALCHEMY_DATABASE_URI"]
    environment = {**os.environ, "DATABASE_URL": url}
    with mirror_app.app_context():
        tokens = {
            name: issue_token(db.session, project_id=project, roles=[role], ttl_seconds=0)
            for name, (project, role) in CALLERS.items()
        }
    first_change = _last_change(mirror_app)
    service = start_service(url)
    log = tmp_path / "follower.log"
    follower = start_follower(
        mirror_app, with_reader(glance_url), log, interval=0.3, reconcile_every=3600
    )
    try:
        pollers = {name: Poller(service.url, token) for name, token in tokens.items()}
        writers = [
            GlanceWriter(glance, operations=120),
            Importer(environment, "import-a", seed=1, rounds=25),
            Importer(environment, "import-b", seed=2, rounds=25),
        ]
        for thread in [*pollers.values(), *writers]:
            thread.start()
        for writer in writers:
            writer.join(timeout=600)
            assert not writer.is_alive(), "a writer did not finish"
        for poller in pollers.values():
            poller.__exit__(None, None, None)
            assert poller.error is None, poller.error
    finally:
        follower.terminate()
        follower.wait(60)
    # The mirror catches up with Glance (its overlap covers the late commits).
    with mirror_app.app_context():
        mirror.follow_pass(db.session, source_of(glance_url), overlap=dt.timedelta(hours=1))
    try:
        seen = {}
        for name, poller in pollers.items():
            poller.poll()
            token = tokens[name]
            everything = listed_images(
                service.url, token, **{"changes-since": EPOCH, "is_public": "none"}
            )
            assert poller.feed == everything, f"{name}: the feed poller's view differs"
            assert poller.since["view"] == everything, f"{name}: the changes-since poller's differs"
            listed = list(listed_images(service.url, token).values())
            assert poller.listed == listed, f"{name}: the If-None-Match poller's view differs"
            seen[name] = {"images": len(everything), "polls": poller.polls, **poller.seen}
    finally:
        service.stop()
    applied = _last_change(mirror_app) - first_change
    print(
        f"pollers drill: {writers[0].done} Glance writes and {writers[1].done + writers[2].done} "
        f"imports applied in {applied} numbered changes; per caller: {seen}"
    )
    assert [writer.done for writer in writers] == [120, 25, 25]
