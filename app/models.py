"""Tables of the catalogue. Changes go through migrations (migrations/versions)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from app.db import db

UTC_TIMESTAMP = sa.DateTime(timezone=True)


class Image(db.Model):
    __tablename__ = "images"

    id = sa.Column(sa.Uuid, primary_key=True)
    name = sa.Column(sa.String(255))
    size = sa.Column(sa.BigInteger)
    virtual_size = sa.Column(sa.BigInteger)
    status = sa.Column(sa.String(30), nullable=False)
    disk_format = sa.Column(sa.String(20))
    container_format = sa.Column(sa.String(20))
    checksum = sa.Column(sa.String(32))
    created_at = sa.Column(UTC_TIMESTAMP, nullable=False)
    updated_at = sa.Column(UTC_TIMESTAMP)
    deleted_at = sa.Column(UTC_TIMESTAMP)
    deleted = sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    is_public = sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    protected = sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    min_ram = sa.Column(sa.Integer, nullable=False, server_default="0")
    min_disk = sa.Column(sa.Integer, nullable=False, server_default="0")
    owner = sa.Column(sa.String(255))
    # The source that loaded it (a Glance mirror's name, a named import);
    # NULL for an image loaded before sources were recorded.
    source = sa.Column(sa.String(64))
    # Glance's os_hidden: left out of default listings (docs/api.md).
    hidden = sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    # The change number of the image's latest change (app/loading/changes.py);
    # 0 for an image unchanged since before change numbers. Never null, but
    # declared nullable for 1.2's loaders (migration 3e4f5a6b7c8d).
    change = sa.Column(sa.BigInteger, nullable=True, server_default="0")

    __table_args__ = (
        # Default listing order (created_at DESC, id DESC) and its marker
        # predicate, read backwards.
        sa.Index("ix_images_created_at_id", "created_at", "id"),
        # Visibility: a project's own images.
        sa.Index("ix_images_owner", "owner"),
        # A source's own images: its reconcile, prune and forget-source.
        sa.Index("ix_images_source", "source"),
        # The change feed, in change order.
        sa.Index("ix_images_change_id", "change", "id"),
    )


# What an image is to a v1 client, in the table's order (listing rows and staged
# loads share it): every column but the catalogue's own bookkeeping.
IMAGE_COLUMNS = tuple(
    column.name
    for column in Image.__table__.columns
    if column.name not in ("hidden", "source", "change")
)


def sort_expressions(columns):
    """Each sort key's ORDER BY expression, with NULL as the lowest value.

    Text sorts by Unicode code point (COLLATE "C"), whatever the server's
    locale: the same order on every server, and the cheapest comparison.
    The indexes below and the listing query share these expressions so that
    PostgreSQL can read a page in index order, either direction.
    """

    def text(column):
        return sa.func.coalesce(column, sa.literal_column("''")).collate("C")

    return {
        "name": text(columns.name),
        "status": columns.status.collate("C"),
        "container_format": text(columns.container_format),
        "disk_format": text(columns.disk_format),
        "size": sa.func.coalesce(columns.size, sa.literal_column("-1")),
        "id": columns.id,
        "created_at": columns.created_at,
        "updated_at": sa.func.coalesce(
            columns.updated_at, sa.literal_column("'-infinity'::timestamptz")
        ),
    }


# sort_key=<key> and its marker predicate: (expression, created_at, id). The
# filters on these columns are written on the same expressions, so the size
# range and changes-since (updated_at > :ts) are served by these indexes too.
for _key, _expression in sort_expressions(Image.__table__.c).items():
    if _key not in ("id", "created_at"):
        sa.Index(f"ix_images_{_key}_sort", _expression, Image.created_at, Image.id)


class ImageProperty(db.Model):
    __tablename__ = "image_properties"

    image_id = sa.Column(sa.Uuid, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name = sa.Column(sa.String(255), primary_key=True)
    value = sa.Column(sa.Text, nullable=False)

    # Several property-<key>=<value> filters: the images having all the pairs
    # (one filter probes the primary key instead). md5 of the value, because a
    # value may be longer than a btree entry can hold.
    __table_args__ = (
        sa.Index("ix_image_properties_name_value", "name", sa.func.md5(value), "image_id"),
    )


class ImageMember(db.Model):
    __tablename__ = "image_members"

    image_id = sa.Column(sa.Uuid, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    member = sa.Column(sa.String(255), primary_key=True)
    # The member may share the image further (shown by the members API).
    can_share = sa.Column(sa.Boolean, nullable=False, server_default=sa.false())

    # Visibility: the images shared with a project.
    __table_args__ = (sa.Index("ix_image_members_member", "member", "image_id"),)


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    # SHA-256 hex digest of the token; the token itself is never stored.
    token_hash = sa.Column(sa.String(64), primary_key=True)
    project_id = sa.Column(sa.String(255))
    roles = sa.Column(ARRAY(sa.String(64)), nullable=False, server_default="{}")
    expires_at = sa.Column(UTC_TIMESTAMP)
    created_at = sa.Column(UTC_TIMESTAMP, nullable=False, server_default=sa.func.now())


class CatalogueLoad(db.Model):
    """The latest load from each source (an import's, generate, a mirror's name), for /metrics."""

    __tablename__ = "catalogue_loads"

    source = sa.Column(sa.String(64), primary_key=True)
    finished_at = sa.Column(UTC_TIMESTAMP, nullable=False, server_default=sa.func.clock_timestamp())
    inserted = sa.Column(sa.Integer, nullable=False)
    updated = sa.Column(sa.Integer, nullable=False)
    unchanged = sa.Column(sa.Integer, nullable=False)


class GlanceMirror(db.Model):
    """Where the Glance follower (`images sync-glance --follow`) stands, per source."""

    __tablename__ = "glance_mirrors"

    # The mirror's source name (images sync-glance --source).
    source = sa.Column(sa.String(512), primary_key=True)
    # Changes in Glance up to this time (Glance's own timestamps) are mirrored.
    watermark = sa.Column(UTC_TIMESTAMP)
    last_success_at = sa.Column(UTC_TIMESTAMP)
    last_pass_seconds = sa.Column(sa.Float)
    last_reconcile_at = sa.Column(UTC_TIMESTAMP)
    last_error = sa.Column(sa.Text)
    last_error_at = sa.Column(UTC_TIMESTAMP)
    # The Glance schema the last pass read: after a change, a full pass.
    schema_signature = sa.Column(sa.Text)
    # Deletions the last reconcile refused to apply (the mass-deletion guard).
    refused_deletions = sa.Column(sa.Integer)


class CatalogueState(db.Model):
    """One row: this catalogue's identity and its latest change number.

    Every change takes the next number by updating `last` (app/loading/
    changes.py); the row stays locked until the change commits, so numbers are
    taken in commit order: once a reader has seen number N, no change
    numbered below N can still commit.
    """

    __tablename__ = "catalogue_state"

    id = sa.Column(sa.SmallInteger, primary_key=True)
    last_change = sa.Column(sa.BigInteger, nullable=False, server_default="0")
    # Who issued a feed cursor (and an ETag): not another catalogue.
    deployment = sa.Column(sa.Uuid, nullable=False)
    # Signs feed cursors, so that an altered one is refused.
    cursor_key = sa.Column(sa.LargeBinary, nullable=False)
    # Tombstones up to this change number were pruned: an older cursor is a 410.
    pruned_through = sa.Column(sa.BigInteger, nullable=False, server_default="0")
    # The latest change that changes-since cannot show everyone it concerns
    # (a share, a lost image, an image loaded with an old updated_at): a
    # changes-since poller lists again when it moves (docs/api.md, "Polling").
    relist_change = sa.Column(sa.BigInteger, nullable=False, server_default="0")

    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_catalogue_state_one_row"),)


class ImageDeparture(db.Model):
    """A tombstone: from change `change` on, `audience` may no longer see the image.

    `audience` is `project:<id>` (its membership or ownership ended), `public`
    (it stopped being public: every project but those that still see it) or
    `removed` (it is gone: admins too). The change feed tells an audience that
    no longer sees the image `{"id": ..., "visible": false}`.
    """

    __tablename__ = "image_departures"

    image_id = sa.Column(sa.Uuid, primary_key=True)
    audience = sa.Column(sa.Text, primary_key=True)
    change = sa.Column(sa.BigInteger, nullable=False)
    departed_at = sa.Column(UTC_TIMESTAMP, nullable=False, server_default=sa.func.now())

    __table_args__ = (
        sa.Index("ix_image_departures_change_image_id", "change", "image_id"),
        # Pruning by age (images prune-changes).
        sa.Index("ix_image_departures_departed_at", "departed_at"),
    )
