"""The SQL behind the image listing (visibility, filters, keyset paging), one image, its members,
the change feed.

Who may see an image is one predicate (_visible_condition), the listing's:
a single image and its members are looked up through it too.

Each distinct query shape (which filters, which sort, which kind of caller) is
built with SQLAlchemy Core and compiled to SQL text once, with a placeholder
for every value; a request only sends the text and its values through a
Reader (app/db/reads.py), with no per-request SQLAlchemy work. Rows come back
as tuples in LISTING_COLUMNS order.
"""

import functools
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from app.db.reads import compiled
from app.loading.changes import PROJECT
from app.models import (
    IMAGE_COLUMNS,
    Image,
    ImageDeparture,
    ImageMember,
    ImageProperty,
    sort_expressions,
)

images_table = Image.__table__
members_table = ImageMember.__table__
properties_table = ImageProperty.__table__
departures_table = ImageDeparture.__table__

MATCH_FILTERS = ("name", "status", "container_format", "disk_format")
# Filters served by an index of their own (their sort key's): each sort key
# and the query values filtering on it, in the order in which their matches
# are counted (the likely rarest first).
OWN_FILTERS = {
    "name": ("name",),
    "updated_at": ("changes_since",),
    "size": ("size_min", "size_max"),
    "disk_format": ("disk_format",),
    "container_format": ("container_format",),
    "status": ("status",),
}
# Fetching and sorting this many matches costs about as much as the worst
# walks along another key's index it replaces (bench/README.md).
MATCHES_FIRST_MAX = 100_000
EQUALITY_FILTERS = ("protected", "min_ram", "min_disk")
FILTERS = (*MATCH_FILTERS, *EQUALITY_FILTERS, "size_min", "size_max", "changes_since")
SORTED = sort_expressions(images_table.c)
IMAGE_FIELDS = [images_table.c[name] for name in IMAGE_COLUMNS]
EMPTY_OBJECT = sa.literal_column("'{}'::json")
# The columns of a listing row, in order (the brief listing stops before properties).
LISTING_COLUMNS = (*IMAGE_COLUMNS, "properties")
ID, STATUS = LISTING_COLUMNS.index("id"), LISTING_COLUMNS.index("status")


class InvalidMarker(ValueError):
    """The marker names no image the caller may page from."""


class Shape(NamedTuple):
    """Everything about a listing query except its values."""

    sort_key: str
    descending: bool
    visibility: str
    filters: tuple
    property_filters: int
    marker: bool
    with_properties: bool
    include_hidden: bool
    # Fetch the matches of a filter through its own index, then sort them
    # (instead of walking the sort key's index): see _counted_filter.
    matches_first: bool = False


class ListingPlan(NamedTuple):
    """The (SQL, parameters) statements of one listing, and the shape of its page.

    `marker_check` is None without a marker; `page` and `shape` are None when
    no image can be listed (`limit=0`, or a filter nothing can match).
    """

    marker_check: tuple | None
    page: tuple | None
    shape: Shape | None


def list_images(reader, caller, query, *, with_properties=True):
    """List the images `caller` may see, filtered, sorted and paged as `query` says.

    :raises InvalidMarker: the marker is unknown, invisible, or deleted (unless
        the caller is an admin or asks for changes-since).
    """
    plan = listing_plan(reader, caller, query, with_properties=with_properties)
    # The marker is checked first, as Glance did: a bad one is a 400 even
    # when the page would be empty anyway.
    if plan.marker_check is not None and reader.first(*plan.marker_check) is None:
        raise InvalidMarker(query.page.marker)
    return [] if plan.page is None else reader.rows(*plan.page)


def listing_plan(reader, caller, query, *, with_properties=True):
    """The statements `list_images` runs for `query`, and the shape of its page."""
    filters = query.filters
    visibility = _visibility(caller, query.is_public)
    parameters = _parameters(caller, query)
    marker_check = None
    if query.page.marker is not None:
        deleted_allowed = caller.is_admin or filters.changes_since is not None
        marker_check = _marker_sql(visibility, deleted_allowed).with_values(parameters)
    if query.page.limit == 0 or filters.matches_nothing:
        return ListingPlan(marker_check, None, None)
    present = filters.present()
    shape = Shape(
        sort_key=query.sort.key,
        descending=query.sort.descending,
        visibility=visibility,
        filters=tuple(name for name in FILTERS if name in present),
        property_filters=len(filters.properties),
        marker=query.page.marker is not None,
        with_properties=with_properties,
        include_hidden=query.include_hidden,
    )
    counted = _counted_filter(shape)
    if counted is not None:
        shape = shape._replace(matches_first=_few_matches(reader, counted, parameters))
    return ListingPlan(marker_check, _listing_sql(shape).with_values(parameters), shape)


def _counted_filter(shape):
    """The filter whose number of matches decides the plan, or None.

    None when the sort key's index serves the query well: the default order
    (clients' own), and a filter sorted by its own key. In any other order a
    filter's matches may all sit at the far end of the sort key's index.
    """
    if (shape.sort_key, shape.descending) == ("created_at", True):
        return None
    present = {
        key: tuple(name for name in names if name in shape.filters)
        for key, names in OWN_FILTERS.items()
    }
    present = {key: names for key, names in present.items() if names}
    if not present or shape.sort_key in present:
        return None
    return next(iter(present.values()))


def _few_matches(reader, names, parameters):
    """PostgreSQL's estimate of the filter's matches (planning only), against MATCHES_FIRST_MAX.

    Its statistics of one expression are accurate; what the planner cannot
    know is where the matches sit in another key's order.
    """
    statement, values = _estimate_sql(names).with_values(parameters)
    (plan,) = reader.first("EXPLAIN (FORMAT JSON) " + statement, values)[0]
    return plan["Plan"]["Plan Rows"] <= MATCHES_FIRST_MAX


@functools.lru_cache(maxsize=16)
def _estimate_sql(names):
    conditions = [condition for name in names for condition in _conditions_of(name)]
    return compiled(sa.select(images_table.c.id).where(*conditions))


def _visibility(caller, is_public):
    if caller.is_admin and is_public is None:
        return "everything"
    if caller.is_admin and is_public is False:
        return "non-public"
    if caller.project_id is None:
        return "public"
    return "project"


def _parameters(caller, query):
    parameters = query.filters.present()
    for number, (key, value) in enumerate(query.filters.properties):
        parameters[f"property_key_{number}"] = key
        parameters[f"property_value_{number}"] = value
    marker = query.page.marker
    parameters.update(
        project=caller.project_id,
        limit=query.page.limit,
        marker=None if marker is None else str(marker),
    )
    return parameters


@functools.lru_cache(maxsize=2048)
def _listing_sql(shape):
    return compiled(_listing_statement(shape))


def _listing_statement(shape):
    conditions = [_visible_condition(shape.visibility), *_filter_conditions(shape)]
    if shape.matches_first:
        page = _page_of_matches(shape, conditions)
    else:
        candidates = sa.select(*IMAGE_FIELDS).where(*conditions)
        order = _sort_order(candidates.selected_columns, shape.sort_key)
        page = _paged(candidates, order, shape).subquery("page")
    columns = [page, _properties_of(page)] if shape.with_properties else [page]
    # The page is chosen first, so properties are gathered for its rows only,
    # in the same round trip.
    page_order = _sort_order(page.c, shape.sort_key)
    return sa.select(*columns).order_by(*_directed(page_order, shape.descending))


def _page_of_matches(shape, conditions):
    """The page chosen among all of a filter's matches, fetched through its own index.

    OFFSET 0 keeps the matches a subquery of their own: fetched whole (the
    marker is applied to them, so it cannot steer that choice), then sorted.
    Only their sort values go through the sort, which narrow rows make
    quicker; the page's rows are read by id afterwards.
    """
    keys = _sort_keys(shape.sort_key)
    matches = sa.select(*(SORTED[key].label(key) for key in keys)).where(*conditions)
    matches = matches.offset(0).subquery("matches")
    order = [matches.c[key] for key in keys]
    chosen = _paged(sa.select(*order), order, shape).subquery("chosen")
    return (
        sa.select(*IMAGE_FIELDS)
        .join_from(images_table, chosen, images_table.c.id == chosen.c.id)
        .subquery("page")
    )


def _paged(candidates, order, shape):
    """`candidates` after the marker, in `order`, one page long."""
    if shape.marker:
        # Compared inside PostgreSQL: values such as '-infinity' have no Python twin.
        marker_order = _sort_order(images_table.c, shape.sort_key)
        after = (
            sa.select(*marker_order)
            .where(images_table.c.id == sa.bindparam("marker"))
            .scalar_subquery()
        )
        position = sa.tuple_(*order)
        candidates = candidates.where(position < after if shape.descending else position > after)
    return candidates.order_by(*_directed(order, shape.descending)).limit(sa.bindparam("limit"))


@functools.lru_cache(maxsize=16)
def _marker_sql(visibility, deleted_allowed):
    conditions = [images_table.c.id == sa.bindparam("marker"), _visible_condition(visibility)]
    if not deleted_allowed:
        conditions.append(images_table.c.deleted.is_(False))
    return compiled(sa.select(images_table.c.id).where(*conditions))


def _sort_keys(sort_key):
    # Glance's tie-breakers: created_at, then id, in the requested direction;
    # nothing after the unique id can change the order.
    keys = list(dict.fromkeys((sort_key, "created_at", "id")))
    return keys[: keys.index("id") + 1]


def _sort_order(columns, sort_key):
    expressions = sort_expressions(columns)
    return [expressions[key] for key in _sort_keys(sort_key)]


def _directed(order, descending):
    return [expression.desc() if descending else expression.asc() for expression in order]


def _properties_of(page):
    as_object = sa.func.coalesce(
        # In name order: the same bytes whatever plan PostgreSQL picks.
        sa.select(
            sa.func.json_object_agg(
                properties_table.c.name,
                aggregate_order_by(properties_table.c.value, properties_table.c.name),
            )
        )
        .where(properties_table.c.image_id == page.c.id)
        .scalar_subquery(),
        EMPTY_OBJECT,
    )
    # A deleted image's properties are deleted with it, as in Glance.
    return sa.case((page.c.deleted, EMPTY_OBJECT), else_=as_object).label("properties")


def _visible_condition(visibility):
    if visibility == "everything":
        return sa.true()
    if visibility == "non-public":
        return images_table.c.is_public.is_(False)
    if visibility == "public":
        return images_table.c.is_public
    project = sa.bindparam("project", type_=images_table.c.owner.type)
    # A correlated EXISTS probes the members' primary key only for the rows
    # the cheaper tests did not settle.
    shared_with_project = sa.exists().where(
        members_table.c.image_id == images_table.c.id, members_table.c.member == project
    )
    return sa.or_(
        images_table.c.is_public,
        images_table.c.owner == project,
        # Deleting an image ends its memberships, as Glance's soft delete did.
        sa.and_(images_table.c.deleted.is_(False), shared_with_project),
    )


def _filter_conditions(shape):
    conditions = [condition for name in shape.filters for condition in _conditions_of(name)]
    if "changes_since" not in shape.filters:
        # With changes-since, deleted, killed and hidden images stay in: that
        # is how clients learn of them.
        conditions += [images_table.c.deleted.is_(False), images_table.c.status != "killed"]
        if not shape.include_hidden:
            conditions.append(images_table.c.hidden.is_(False))
    if shape.property_filters:
        conditions.append(_has_properties(shape.property_filters))
    return conditions


def _conditions_of(name):
    """One filter's conditions (`name` as in FILTERS).

    Written on the sort expressions (NULL as lowest), so each sort key's index
    serves its own filter too; IS NOT NULL and a lower bound of 0 keep NULLs
    out, as the plain comparisons would.
    """
    if name in MATCH_FILTERS:
        conditions = [SORTED[name].in_(sa.bindparam(name, expanding=True))]
        if images_table.c[name].nullable:
            conditions.append(images_table.c[name].is_not(None))
        return conditions
    if name in EQUALITY_FILTERS:
        return [images_table.c[name] == sa.bindparam(name)]
    if name == "size_min":
        return [SORTED["size"] >= sa.bindparam("size_min")]
    if name == "size_max":
        return [SORTED["size"] >= 0, SORTED["size"] <= sa.bindparam("size_max")]
    return [SORTED["updated_at"] > sa.bindparam("changes_since")]


def _has_properties(count):
    """All `count` property filters in one subquery, so planning stays cheap however many.

    One filter is an EXISTS, which PostgreSQL plans as whichever semi-join
    fits how common the pair is. Several would be as many semi-joins, whose
    join orders the planner searches (seconds for a hundred); instead, one
    IN over the images having all the pairs (names are unique per image, so
    `count` matching rows means every pair matched), found by name and
    md5(value) in ix_image_properties_name_value, then compared whole.
    """
    pair = sa.tuple_(properties_table.c.name, properties_table.c.value)
    keys = [
        sa.bindparam(f"property_key_{number}", type_=properties_table.c.name.type)
        for number in range(count)
    ]
    values = [
        sa.bindparam(f"property_value_{number}", type_=properties_table.c.value.type)
        for number in range(count)
    ]
    pairs = [sa.tuple_(key, value) for key, value in zip(keys, values, strict=True)]
    if count == 1:
        # Without md5 the planner cannot pick the pairs' index, whose
        # semi-join it prefers even for a pair thousands of images have,
        # where probing the primary key along the sort order is 40x faster.
        matching = sa.exists().where(
            properties_table.c.image_id == images_table.c.id, pair == pairs[0]
        )
    else:
        digest = sa.tuple_(properties_table.c.name, sa.func.md5(properties_table.c.value))
        digests = [
            sa.tuple_(key, sa.func.md5(value)) for key, value in zip(keys, values, strict=True)
        ]
        matching = images_table.c.id.in_(
            sa.select(properties_table.c.image_id)
            .where(digest.in_(digests), pair.in_(pairs))
            .group_by(properties_table.c.image_id)
            .having(sa.func.count() == count)
        )
    # A deleted image's properties count as deleted with it.
    return sa.and_(images_table.c.deleted.is_(False), matching)


class Membership(NamedTuple):
    member: str
    can_share: bool


class SharedImage(NamedTuple):
    image_id: str
    can_share: bool


def find_image(reader, caller, image_id):
    """The listing row of image `image_id` if `caller` may see it, else None.

    Who sees which image is the listing's rule with changes-since (deleted
    and killed images to those it lists them to); an admin sees every image.
    """
    statement = _image_sql(_visibility(caller, None))
    return reader.first(*statement.with_values(_identity(caller, image_id)))


def image_members(reader, caller, image_id, member=None):
    """[Membership] of image `image_id` (only `member`'s, if given), or None.

    None when `caller` may not see the image or it is deleted (to an admin:
    its status is deleted; a pending_delete image's list is empty). Its owner
    and admins see every membership, a member its own, anyone else none.
    """
    statement = _members_sql(_visibility(caller, None), caller.is_admin, member is not None)
    rows = reader.rows(*statement.with_values({**_identity(caller, image_id), "member": member}))
    if not rows:
        return None
    return [Membership(*row) for row in rows if row[0] is not None]


def shared_images(reader, caller, member):
    """[SharedImage] of the live images shared with `member` that `caller` may know of.

    Admins and `member` itself: all of them; anyone else: those it owns.
    """
    statement = _shared_sql(caller.is_admin or caller.project_id == member)
    parameters = {"member": member, "project": caller.project_id}
    return [SharedImage(*row) for row in reader.rows(*statement.with_values(parameters))]


def _identity(caller, image_id):
    return {"id": str(image_id), "project": caller.project_id}


@functools.lru_cache(maxsize=4)
def _image_sql(visibility):
    return compiled(
        sa.select(*IMAGE_FIELDS, _properties_of(images_table)).where(
            images_table.c.id == sa.bindparam("id"), _visible_condition(visibility)
        )
    )


@functools.lru_cache(maxsize=16)
def _members_sql(visibility, admin, one_member):
    # Glance v1 answered 404 for an image whose status is deleted; admins,
    # who may see deleted images, saw a pending_delete image's (empty) list.
    live = images_table.c.status != "deleted" if admin else images_table.c.deleted.is_(False)
    image = (
        sa.select(images_table.c.id, images_table.c.owner)
        .where(images_table.c.id == sa.bindparam("id"), live, _visible_condition(visibility))
        .cte("image")
    )
    project = sa.bindparam("project", type_=images_table.c.owner.type)
    shown = [members_table.c.image_id == image.c.id]
    if not admin:
        shown.append(sa.or_(image.c.owner == project, members_table.c.member == project))
    if one_member:
        shown.append(members_table.c.member == sa.bindparam("member"))
    # The image's own row comes back (with NULLs) when no membership is shown.
    return compiled(
        sa.select(members_table.c.member, members_table.c.can_share)
        .select_from(image.outerjoin(members_table, sa.and_(*shown)))
        .order_by(members_table.c.member)
    )


@functools.lru_cache(maxsize=2)
def _shared_sql(every_one):
    conditions = [
        members_table.c.member == sa.bindparam("member"),
        images_table.c.deleted.is_(False),
    ]
    if not every_one:
        conditions.append(
            images_table.c.owner == sa.bindparam("project", type_=images_table.c.owner.type)
        )
    return compiled(
        sa.select(members_table.c.image_id, members_table.c.can_share)
        .join(images_table, images_table.c.id == members_table.c.image_id)
        .where(*conditions)
        .order_by(members_table.c.image_id)
    )


class Change(NamedTuple):
    """One entry of a change-feed page: the image's listing row, or None if the caller lost it."""

    change: int
    image_id: str
    row: tuple | None


def changes_page(reader, caller, after, limit):
    """[Change] of the images `caller` sees or stopped seeing after position `after`, in order.

    `after` is (change, image id). An image the caller sees is listed at its
    latest change, as the listing with changes-since shows it (deleted, killed
    and hidden images too; an admin sees every image); one it saw and no
    longer sees (app/loading/changes.py's departures) at its latest departure.
    """
    visibility = _visibility(caller, None)
    parameters = {
        "after_change": after[0],
        "after_id": str(after[1]),
        "limit": limit,
        "project": caller.project_id,
        "audiences": _audiences(visibility, caller.project_id),
    }
    rows = reader.rows(*_changes_sql(visibility).with_values(parameters))
    return [Change(row[0], row[1], row[3:] if row[2] else None) for row in rows]


def _audiences(visibility, project):
    """The departures whose image the caller may have seen (app/models.py ImageDeparture)."""
    if visibility == "everything":
        return ("removed",)
    if visibility == "public":
        return ("public",)
    return ("public", PROJECT + project)


@functools.lru_cache(maxsize=4)
def _changes_sql(visibility):
    after = sa.tuple_(sa.bindparam("after_change"), sa.bindparam("after_id", type_=sa.Uuid))
    limit = sa.bindparam("limit")
    seen = (
        sa.select(images_table.c.change, images_table.c.id, sa.true().label("visible"))
        .where(sa.tuple_(images_table.c.change, images_table.c.id) > after)
        .where(_visible_condition(visibility))
        .order_by(images_table.c.change, images_table.c.id)
        .limit(limit)
    )
    still_seen = sa.exists().where(
        images_table.c.id == departures_table.c.image_id, _visible_condition(visibility)
    )
    departed = (
        sa.select(
            sa.func.max(departures_table.c.change).label("change"),
            departures_table.c.image_id,
            sa.false().label("visible"),
        )
        .where(
            sa.tuple_(departures_table.c.change, departures_table.c.image_id) > after,
            departures_table.c.audience.in_(sa.bindparam("audiences", expanding=True)),
            ~still_seen,
        )
        .group_by(departures_table.c.image_id)
        .order_by(sa.func.max(departures_table.c.change), departures_table.c.image_id)
        .limit(limit)
    )
    entries = sa.union_all(seen, departed).subquery("entries")
    # A seen image's row, read in the same statement (the same snapshot).
    shown = entries.outerjoin(
        images_table, sa.and_(entries.c.visible, images_table.c.id == entries.c.id)
    )
    return compiled(
        sa.select(entries.c.change, entries.c.id, entries.c.visible, *IMAGE_FIELDS)
        .add_columns(_properties_of(images_table))
        .select_from(shown)
        .order_by(entries.c.change, entries.c.id)
        .limit(limit)
    )
