"""Reading a Glance database (read-only) into records shaped as Glance v1 presented its images.

Works on the schema of any release from Mitaka on, on PostgreSQL and MySQL/
MariaDB, by reflecting the three tables it needs: columns v1 never showed
(os_hash_*, ...) and unknown future columns are ignored; a missing one that
v1 showed is an error naming it. The v1 view (Queens'
`mutate_image_dict_to_v1` and v1 registry):

- `is_public` is `visibility == 'public'` (before Ocata, the `is_public`
  column; between Ocata's expand and migrate steps, where `visibility` is
  still NULL, `is_public` too);
- members count only for `shared` images (before Ocata, for non-public ones),
  whatever their status; `private` and `community` images are the owner's;
- only non-deleted properties and members; deleted images keep their
  `deleted`, `deleted_at` and `updated_at`, so `changes-since` pollers see
  the deletion; Glance's naive UTC timestamps are kept verbatim, as UTC;
- `os_hidden` (Rocky and later) becomes `hidden`.

Every wait on the source is bounded: connecting by `connect_timeout`, each
statement by `read_timeout` (PostgreSQL: statement_timeout and TCP
keepalives; MySQL: the driver's read and write timeouts).
"""

import contextlib
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.db import with_installed_driver

# The v1 fields read from images, besides visibility or is_public.
IMAGE_FIELDS = (
    "id",
    "name",
    "size",
    "virtual_size",
    "status",
    "disk_format",
    "container_format",
    "checksum",
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted",
    "protected",
    "min_ram",
    "min_disk",
    "owner",
)
PROPERTY_FIELDS = ("image_id", "name", "value", "deleted")
MEMBER_FIELDS = (
    "image_id",
    "member",
    "can_share",
    "deleted",
    "created_at",
    "updated_at",
    "deleted_at",
)
# Images per query: ids go into IN lists for their properties and members.
BATCH = 5000


class GlanceSchemaError(Exception):
    """The source is not a Glance database this service can read; the message says why."""


class GlanceSource:
    """One Glance database, known to the catalogue as `name`, reached with read-only sessions."""

    def __init__(self, url, *, name, connect_timeout=10, read_timeout=60):
        self.name = name
        url = sa.make_url(with_installed_driver(url))
        self.engine = sa.create_engine(
            url, poolclass=NullPool, connect_args=_bounded(url, connect_timeout, read_timeout)
        )
        sa.event.listen(self.engine, "connect", _session_settings(read_timeout))
        with self.engine.connect() as connection:
            self.schema_signature = _signature(connection)
        self.images, self.properties, self.members = _reflect(self.engine)
        self._image_columns = [self.images.c[name] for name in IMAGE_FIELDS] + [
            self.images.c[name]
            for name in ("visibility", "is_public", "os_hidden")
            if name in self.images.c
        ]

    @property
    def location(self):
        """The source's URL without its password, for logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def schema_changed(self):
        """True if Glance's three tables are no longer as this source read them."""
        with self.engine.connect() as connection:
            return _signature(connection) != self.schema_signature

    def count_images(self):
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(self.images))

    def newest_change(self):
        """The latest change time of any image or membership (naive UTC), or None."""
        with self.engine.connect() as connection:
            times = [
                connection.scalar(sa.select(sa.func.max(column)))
                for column in (
                    self.images.c.updated_at,
                    self.images.c.created_at,
                    self.members.c.updated_at,
                    self.members.c.created_at,
                    self.members.c.deleted_at,
                )
            ]
        return max((moment for moment in times if moment is not None), default=None)

    def all_records(self, batch=BATCH):
        """Yield lists of records for every image, in id order, `batch` at a time."""
        with contextlib.closing(self._in_id_order(self._image_columns, batch)) as batches:
            for connection, rows in batches:
                yield self._records(connection, rows)

    def changes_since(self, since):
        """Return {image id: latest change time} for images and memberships changed after `since`.

        Property changes always go through an image update, which moves the
        image's updated_at; membership changes do not, so members are read too.
        """
        images, members = self.images.c, self.members.c
        member_change = sa.func.greatest(
            members.created_at,
            sa.func.coalesce(members.updated_at, members.created_at),
            sa.func.coalesce(members.deleted_at, members.created_at),
        )
        image_change = sa.func.greatest(
            images.created_at, sa.func.coalesce(images.updated_at, images.created_at)
        )
        changed = sa.union_all(
            sa.select(images.id, image_change).where(
                sa.or_(images.updated_at > since, images.created_at > since)
            ),
            sa.select(members.image_id, member_change).where(
                sa.or_(
                    members.updated_at > since,
                    members.created_at > since,
                    members.deleted_at > since,
                )
            ),
        )
        latest = {}
        with self.engine.connect() as connection:
            for image_id, changed_at in connection.execute(changed):
                if image_id not in latest or changed_at > latest[image_id]:
                    latest[image_id] = changed_at
        return latest

    def records_for(self, image_ids, batch=BATCH):
        """Yield lists of records for the given ids (images gone meanwhile are skipped)."""
        image_ids = sorted(image_ids)
        for start in range(0, len(image_ids), batch):
            chunk = image_ids[start : start + batch]
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(*self._image_columns).where(self.images.c.id.in_(chunk))
                ).all()
                yield self._records(connection, rows)

    def ids(self, batch=50_000):
        """Yield every image id, in id order."""
        with contextlib.closing(self._in_id_order([self.images.c.id], batch)) as batches:
            for _, rows in batches:
                yield from (row.id for row in rows)

    def _in_id_order(self, columns, batch):
        """Yield (connection, rows of `columns`) for every image, `batch` at a time by id.

        Close it (contextlib.closing) rather than drop it: a connection the
        source lost fails as it is closed, and that failure belongs to the caller.
        """
        after = ""
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(*columns)
                    .where(self.images.c.id > after)
                    .order_by(self.images.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return
                yield connection, rows
            after = rows[-1].id

    def _records(self, connection, rows):
        ids = [row.id for row in rows]
        properties, members = {}, {}
        for image_id, name, value in connection.execute(
            sa.select(
                self.properties.c.image_id, self.properties.c.name, self.properties.c.value
            ).where(self.properties.c.image_id.in_(ids), self.properties.c.deleted.is_(False))
        ):
            # A NULL value cannot be made through Glance's API; v1 shows strings only.
            if value is not None:
                properties.setdefault(image_id, {})[name] = value
        for image_id, member, can_share in connection.execute(
            sa.select(self.members.c.image_id, self.members.c.member, self.members.c.can_share)
            .where(self.members.c.image_id.in_(ids), self.members.c.deleted.is_(False))
            .order_by(self.members.c.member)
        ):
            if member:  # an empty project id is no project (Glance never issues one)
                members.setdefault(image_id, {})[member] = bool(can_share)
        return [
            self._v1_record(row, properties.get(row.id, {}), members.get(row.id, {}))
            for row in rows
        ]

    def _v1_record(self, row, properties, members):
        visibility = getattr(row, "visibility", None)
        if visibility is None:  # before Ocata, or before its data migration ran
            public, shared = bool(row.is_public), not row.is_public
        else:
            public, shared = visibility == "public", visibility == "shared"
        try:
            image_id = uuid.UUID(row.id)
        except ValueError:
            raise GlanceSchemaError(f"image id {row.id!r} is not a UUID") from None
        return {
            **{name: getattr(row, name) for name in IMAGE_FIELDS},
            "id": image_id,
            "created_at": glance_time(row.created_at),
            "updated_at": glance_time(row.updated_at),
            "deleted_at": glance_time(row.deleted_at),
            "deleted": bool(row.deleted),
            "protected": bool(row.protected),
            "min_ram": row.min_ram or 0,
            "min_disk": row.min_disk or 0,
            # Glance's request context made an empty project id no owner.
            "owner": row.owner or None,
            "is_public": public,
            "hidden": bool(getattr(row, "os_hidden", False)),
            "properties": properties,
            "members": members if shared else {},
        }


def legacy_state_name(url):
    """The name 1.1 kept a mirror's state under: its URL with its driver, without the password."""
    return sa.make_url(with_installed_driver(url)).render_as_string(hide_password=True)


def glance_time(moment):
    """A Glance timestamp (naive, UTC by Glance's convention) as an aware UTC datetime."""
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


def _bounded(url, connect_timeout, read_timeout):
    """The driver's connection options that bound every wait on the source."""
    if url.get_backend_name() == "mysql":
        return {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": read_timeout,
        }
    return {
        "connect_timeout": max(int(connect_timeout), 1),
        # A peer that vanished (no FIN, no RST) is noticed, not waited on forever.
        "keepalives": 1,
        "keepalives_idle": max(int(read_timeout) // 3, 1),
        "keepalives_interval": max(int(read_timeout) // 9, 1),
        "keepalives_count": 3,
        "tcp_user_timeout": int(read_timeout * 1000),
    }


def _session_settings(read_timeout):
    def settings(dbapi_connection, connection_record):
        """Read-only sessions (belt and braces), with a time limit on each statement."""
        cursor = dbapi_connection.cursor()
        if type(dbapi_connection).__module__.startswith("pymysql"):
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        else:
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.execute(f"SET statement_timeout = {int(read_timeout * 1000)}")
        cursor.close()
        dbapi_connection.commit()

    return settings


def _signature(connection):
    """The columns of Glance's three tables, with their types: a Glance upgrade changes it."""
    here = "database()" if connection.dialect.name == "mysql" else "current_schema()"
    rows = connection.exec_driver_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = {here}"
        " AND table_name IN ('images', 'image_properties', 'image_members')"
    ).all()
    return "; ".join(sorted(f"{table}.{column} {kind}" for table, column, kind in rows))


def _reflect(engine):
    metadata = sa.MetaData()
    try:
        metadata.reflect(engine, only=["images", "image_properties", "image_members"])
    except sa.exc.InvalidRequestError as error:
        raise GlanceSchemaError(f"not a Glance database: {error}") from None
    images = metadata.tables["images"]
    required = {
        "images": (images, IMAGE_FIELDS),
        "image_properties": (metadata.tables["image_properties"], PROPERTY_FIELDS),
        "image_members": (metadata.tables["image_members"], MEMBER_FIELDS),
    }
    for table_name, (table, names) in required.items():
        for name in names:
            if name not in table.c:
                raise GlanceSchemaError(f"the Glance table {table_name} has no column {name}")
    if "visibility" not in images.c and "is_public" not in images.c:
        raise GlanceSchemaError("the Glance table images has neither visibility nor is_public")
    return images, metadata.tables["image_properties"], metadata.tables["image_members"]
