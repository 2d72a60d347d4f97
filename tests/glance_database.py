"""Writing a Glance database (loaded by deploy/glance_schemas.py) the way Glance writes it.

`GlanceDatabase` writes rows the way Glance's DB API does: soft deletes of
images with their properties and members, updated_at moved by every image
change, memberships changed without touching the image, and `glance-manage
db purge` removing rows outright.
"""

import datetime as dt
import json
import uuid

import sqlalchemy as sa

from app.db import with_installed_driver


class GlanceDatabase:
    """Writes images, properties and members as Glance does, on a clock of its own."""

    def __init__(self, url):
        self.engine = sa.create_engine(with_installed_driver(url), poolclass=sa.pool.NullPool)
        metadata = sa.MetaData()
        metadata.reflect(self.engine, only=["images", "image_properties", "image_members"])
        self.images = metadata.tables["images"]
        self.properties = metadata.tables["image_properties"]
        self.members = metadata.tables["image_members"]
        self.pre_ocata = "visibility" not in self.images.c
        # Glance's timestamps are naive UTC; whole seconds, as on MySQL.
        self.clock = dt.datetime(2024, 1, 1)
        # What Glance v1 showed for each image, kept by hand beside every write
        # (the oracle the mirror is checked against): JSON Lines import records.
        self.v1 = {}
        self._counted_members = {}

    def tick(self, seconds=1):
        self.clock += dt.timedelta(seconds=seconds)
        return self.clock

    def image(self, *, visibility="public", properties=None, members=None, **fields):
        """Create an image; `members` maps project to member status. Return its id."""
        image_id = fields.pop("id", None) or str(uuid.uuid4())
        now = self.tick()
        row = {
            "id": image_id,
            "name": f"image-{image_id[:8]}",
            "size": 1024,
            "status": "active",
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            "deleted": False,
            "disk_format": "qcow2",
            "container_format": "bare",
            "checksum": "0" * 32,
            "owner": "owner-project",
            "min_disk": 0,
            "min_ram": 0,
            "protected": False,
            "virtual_size": None,
            **fields,
        }
        if self.pre_ocata:
            row["is_public"] = visibility == "public"
        else:
            row["visibility"] = visibility
        with self.engine.begin() as connection:
            connection.execute(self.images.insert(), [row])
            for name, value in (properties or {}).items():
                connection.execute(
                    self.properties.insert(), [self._property(image_id, name, value)]
                )
            for member, status in (members or {}).items():
                connection.execute(self.members.insert(), [self._member(image_id, member, status)])
        # v1: is_public means visibility public; before Ocata any non-public
        # image with members was shared, since Ocata only "shared" ones are.
        self._counted_members[image_id] = visibility == "shared" or (
            self.pre_ocata and visibility != "public"
        )
        self.v1[image_id] = {
            **{key: value for key, value in row.items() if key != "visibility"},
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "is_public": visibility == "public",
            "properties": dict(properties or {}),
            "members": sorted(members or {}) if self._counted_members[image_id] else [],
        }
        return image_id

    def update_image(self, image_id, **fields):
        with self.engine.begin() as connection:
            connection.execute(
                self.images.update()
                .where(self.images.c.id == image_id)
                .values(updated_at=self.tick(), **fields)
            )
        self.v1[image_id].update(fields, updated_at=self.clock.isoformat())

    def set_property(self, image_id, name, value):
        """Add or change a property: Glance saves it with the image, moving updated_at."""
        with self.engine.begin() as connection:
            changed = connection.execute(
                self.properties.update()
                .where(self.properties.c.image_id == image_id, self.properties.c.name == name)
                .values(value=value, deleted=False, deleted_at=None, updated_at=self.tick())
            ).rowcount
            if not changed:
                connection.execute(
                    self.properties.insert(), [self._property(image_id, name, value)]
                )
            connection.execute(self._touch(image_id))
        self.v1[image_id]["properties"][name] = value
        self.v1[image_id]["updated_at"] = self.clock.isoformat()

    def delete_property(self, image_id, name):
        with self.engine.begin() as connection:
            now = self.tick()
            connection.execute(
                self.properties.update()
                .where(self.properties.c.image_id == image_id, self.properties.c.name == name)
                .values(deleted=True, deleted_at=now, updated_at=now)
            )
            connection.execute(self._touch(image_id))
        del self.v1[image_id]["properties"][name]
        self.v1[image_id]["updated_at"] = now.isoformat()

    def add_member(self, image_id, member, status="pending"):
        """A new membership; the image's own row is not touched."""
        with self.engine.begin() as connection:
            connection.execute(self.members.insert(), [self._member(image_id, member, status)])
        if self._counted_members[image_id]:
            self.v1[image_id]["members"] = sorted({*self.v1[image_id]["members"], member})

    def remove_member(self, image_id, member):
        now = self.tick()
        with self.engine.begin() as connection:
            connection.execute(
                self._live_member(image_id, member).values(
                    deleted=True, deleted_at=now, updated_at=now
                )
            )
        members = self.v1[image_id]["members"]
        self.v1[image_id]["members"] = [name for name in members if name != member]

    def delete_image(self, image_id, status="deleted"):
        """Glance's image_destroy: a soft delete of the image, its properties and members."""
        now = self.tick()
        with self.engine.begin() as connection:
            connection.execute(
                self.images.update()
                .where(self.images.c.id == image_id)
                .values(status=status, deleted=True, deleted_at=now, updated_at=now)
            )
            for table in (self.properties, self.members):
                connection.execute(
                    table.update()
                    .where(table.c.image_id == image_id, table.c.deleted.is_(False))
                    .values(deleted=True, deleted_at=now, updated_at=now)
                )
        self.v1[image_id].update(
            status=status,
            deleted=True,
            deleted_at=now.isoformat(),
            updated_at=now.isoformat(),
            properties={},
            members=[],
        )

    def purge(self, image_id):
        """`glance-manage db purge`: the rows go, leaving no trace of the change."""
        with self.engine.begin() as connection:
            for table in (self.properties, self.members):
                connection.execute(table.delete().where(table.c.image_id == image_id))
            connection.execute(self.images.delete().where(self.images.c.id == image_id))
        del self.v1[image_id]

    def jsonl(self):
        """The v1 images as `images import` lines."""
        return "".join(json.dumps(record) + "\n" for record in self.v1.values())

    def _touch(self, image_id):
        return (
            self.images.update().where(self.images.c.id == image_id).values(updated_at=self.clock)
        )

    def _live_member(self, image_id, member):
        return self.members.update().where(
            self.members.c.image_id == image_id,
            self.members.c.member == member,
            self.members.c.deleted.is_(False),
        )

    def _property(self, image_id, name, value):
        return {
            "image_id": image_id,
            "name": name,
            "value": value,
            "created_at": self.clock,
            "updated_at": self.clock,
            "deleted": False,
        }

    def _member(self, image_id, member, status):
        now = self.tick()
        return {
            "image_id": image_id,
            "member": member,
            "can_share": False,
            "status": status,
            "created_at": now,
            "updated_at": now,
            "deleted": False,
        }
