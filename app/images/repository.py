"""The SQL behind the image listing: visibility, filters, keyset paging."""

from collections import defaultdict

import sqlalchemy as sa

from app.models import Image, ImageMember, ImageProperty, sort_expressions

images = Image.__table__
members = ImageMember.__table__
properties = ImageProperty.__table__

SORT_EXPRESSIONS = sort_expressions(images.c)
MATCH_FILTERS = ("name", "status", "container_format", "disk_format")
EQUALITY_FILTERS = ("protected", "min_ram", "min_disk")


class InvalidMarker(ValueError):
    """The marker names no image the caller may page from."""


def list_images(session, caller, query, *, with_properties=True):
    """List the images `caller` may see, filtered, sorted and paged as `query` says.

    :raises InvalidMarker: the marker is unknown, invisible, or deleted (unless
        the caller is an admin or asks for changes-since).
    """
    if query["limit"] == 0:
        return []
    order = _sort_order(query["sort_key"])
    descending = query["sort_dir"] == "desc"
    statement = sa.select(images).where(_visible_to(caller, query["is_public"]), *_filters(query))
    if "marker" in query:
        after = _marker_position(session, caller, query, order)
        position = sa.tuple_(*order)
        statement = statement.where(position < after if descending else position > after)
    statement = statement.order_by(
        *(expression.desc() if descending else expression.asc() for expression in order)
    ).limit(query["limit"])
    rows = [dict(row) for row in session.execute(statement).mappings()]
    if with_properties:
        _attach_properties(session, rows)
    return rows


def _sort_order(sort_key):
    # Glance's tie-breakers: created_at, then id, in the requested direction;
    # nothing after the unique id can change the order.
    keys = list(dict.fromkeys((sort_key, "created_at", "id")))
    return [SORT_EXPRESSIONS[key] for key in keys[: keys.index("id") + 1]]


def _visible_to(caller, is_public):
    if caller.is_admin and is_public is None:
        return sa.true()
    if caller.is_admin and is_public is False:
        return images.c.is_public.is_(False)
    if caller.project_id is None:
        return images.c.is_public
    # A correlated EXISTS probes the members' primary key only for the rows
    # the cheaper tests did not settle; IN would read every membership of the
    # project on every request.
    shared_with_caller = sa.exists().where(
        members.c.image_id == images.c.id, members.c.member == caller.project_id
    )
    return sa.or_(
        images.c.is_public,
        images.c.owner == caller.project_id,
        # Deleting an image ends its memberships, as Glance's soft delete did.
        sa.and_(images.c.deleted.is_(False), shared_with_caller),
    )


def _filters(query):
    conditions = []
    for name in MATCH_FILTERS:
        if name in query:
            conditions.append(images.c[name].in_(query[name]))
    for name in EQUALITY_FILTERS:
        if name in query:
            conditions.append(images.c[name] == query[name])
    if "size_min" in query:
        conditions.append(images.c.size >= query["size_min"])
    if "size_max" in query:
        conditions.append(images.c.size <= query["size_max"])
    if "changes_since" in query:
        # Deleted and killed images stay in: that is how clients learn of them.
        conditions.append(images.c.updated_at > query["changes_since"])
    else:
        conditions += [images.c.deleted.is_(False), images.c.status != "killed"]
    for key, value in query["properties"].items():
        conditions.append(_has_property(key, value))
    return conditions


def _has_property(key, value):
    # A deleted image's properties count as deleted with it.
    return sa.and_(
        images.c.deleted.is_(False),
        sa.exists().where(
            properties.c.image_id == images.c.id,
            properties.c.name == key,
            properties.c.value == value,
        ),
    )


def _marker_position(session, caller, query, order):
    conditions = [images.c.id == query["marker"], _visible_to(caller, query["is_public"])]
    if not (caller.is_admin or "changes_since" in query):
        conditions.append(images.c.deleted.is_(False))
    if session.execute(sa.select(images.c.id).where(*conditions)).first() is None:
        raise InvalidMarker(query["marker"])
    # Compared inside PostgreSQL: values such as '-infinity' have no Python twin.
    return sa.select(*order).where(images.c.id == query["marker"]).scalar_subquery()


def _attach_properties(session, rows):
    live_ids = [row["id"] for row in rows if not row["deleted"]]
    by_image = defaultdict(dict)
    if live_ids:
        found = session.execute(
            sa.select(properties.c.image_id, properties.c.name, properties.c.value).where(
                properties.c.image_id.in_(live_ids)
            )
        )
        for image_id, name, value in found:
            by_image[image_id][name] = value
    for row in rows:
        row["properties"] = by_image[row["id"]]
