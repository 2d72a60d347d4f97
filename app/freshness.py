"""How fresh the catalogue is: its change number, its newest change, each source's latest load,
each mirror's state.

The change number is read for every listing, member list and feed page (app/web/answers.py);
the rest at every /metrics scrape and /readyz probe. All through the read path.
"""

from typing import NamedTuple

import sqlalchemy as sa

from app.db.reads import compiled
from app.models import CatalogueLoad, CatalogueState, GlanceMirror, Image, sort_expressions

MIRROR_COLUMNS = tuple(column.name for column in GlanceMirror.__table__.columns)


class Freshness(NamedTuple):
    newest_update: object
    last_loads: dict
    mirrors: list


class ChangeState(NamedTuple):
    """The latest change number, and what the change feed needs with it (catalogue_state)."""

    number: int
    deployment: str
    cursor_key: bytes
    pruned_through: int
    relist_change: int


def change_state(reader):
    """The catalogue's latest change number and feed state: one single-row read."""
    return ChangeState(*reader.first(*_CHANGE_STATE.with_values({})))


def catalogue_freshness(reader):
    """The newest change of any image, each source's latest load, each Glance mirror's state."""
    (newest,) = reader.first(*_NEWEST_UPDATE.with_values({}))
    loads = reader.rows(*_LOADS.with_values({}))
    mirrors = [
        dict(zip(MIRROR_COLUMNS, row, strict=True))
        for row in reader.rows(*_MIRRORS.with_values({}))
    ]
    return Freshness(newest, dict(loads), mirrors)


def mirror_failing(state):
    """True when a mirror's latest pass (or reconcile) failed or was refused."""
    failed, succeeded = state["last_error_at"], state["last_success_at"]
    return failed is not None and (succeeded is None or failed > succeeded)


_NEWEST_UPDATE = compiled(
    # Served by the end of the updated_at sort index.
    sa.select(sa.func.max(sort_expressions(Image.__table__.c)["updated_at"])).where(
        Image.updated_at.is_not(None)
    )
)
_CHANGE_STATE = compiled(
    sa.select(
        CatalogueState.last_change,
        CatalogueState.deployment,
        CatalogueState.cursor_key,
        CatalogueState.pruned_through,
        CatalogueState.relist_change,
    ).where(CatalogueState.id == 1)
)
_LOADS = compiled(sa.select(CatalogueLoad.source, CatalogueLoad.finished_at))
_MIRRORS = compiled(sa.select(*GlanceMirror.__table__.columns).order_by(GlanceMirror.source))
