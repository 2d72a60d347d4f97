"""The listing query: what `ImageQuerySchema` loads and the repository turns into SQL."""

import datetime as dt
import uuid
from dataclasses import dataclass, field

SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
SORT_DIRS = ("asc", "desc")
# The largest values the columns hold: a filter past them matches nothing
# (size_min, min_ram, min_disk) or everything sized (size_max).
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Filters:
    """Which images match. A field left None does not filter."""

    # Any of these values, exactly (`name=x`, `name=in:x,y`).
    name: tuple[str, ...] | None = None
    status: tuple[str, ...] | None = None
    container_format: tuple[str, ...] | None = None
    disk_format: tuple[str, ...] | None = None
    # Inclusive bounds on size; images without a size never match either.
    size_min: int | None = None
    size_max: int | None = None
    # Equalities, as Glance v1 compared them (min_ram is not "at least").
    min_ram: int | None = None
    min_disk: int | None = None
    protected: bool | None = None
    # updated_at strictly later; also lists deleted and killed images.
    changes_since: dt.datetime | None = None
    # (key, value) pairs of custom properties the image must all have.
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def matches_nothing(self):
        """True when a bound lies beyond every value its column can hold."""
        beyond = (
            (self.size_min, BIGINT_MAX),
            (self.min_ram, INT_MAX),
            (self.min_disk, INT_MAX),
        )
        return any(value is not None and value > top for value, top in beyond)

    def present(self):
        """{filter name: value} of the filters given, properties aside."""
        return {
            name: value
            for name, value in vars(self).items()
            if name != "properties" and value is not None
        }


@dataclass(frozen=True)
class Sort:
    """sort_key, then created_at, then id, all in one direction."""

    key: str = "created_at"
    descending: bool = True


@dataclass(frozen=True)
class Page:
    """How many images, after which one (the last image of the previous page)."""

    limit: int
    marker: uuid.UUID | None = None


@dataclass(frozen=True)
class ListingQuery:
    page: Page
    filters: Filters = field(default_factory=Filters)
    sort: Sort = field(default_factory=Sort)
    # Admins only: True (or absent) lists as a member of the caller's project
    # would, None every image, False every non-public image.
    is_public: bool | None = True
    # Hidden images (Glance's os_hidden) in a listing without changes-since.
    include_hidden: bool = False
