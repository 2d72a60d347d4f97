"""ISO 8601 parsing as Glance v1 did it (pyiso8601 0.1.x), and its output format."""

import datetime as dt
import re

ZERO = dt.timedelta(0)

# The grammar pyiso8601 0.1.12 accepted: date-only and compact forms, a space
# or "T" separator, fractions with "." or ",", and a zone only after a time.
_ISO8601 = re.compile(
    r"""
    (?P<year>[0-9]{4})
    (
        (-(?P<monthdash>[0-9]{1,2}) | (?P<month>[0-9]{2})(?!$))
        (
            (-(?P<daydash>[0-9]{1,2}) | (?P<day>[0-9]{2}))
            (
                [ T](?P<hour>[0-9]{2})
                (:?(?P<minute>[0-9]{2}))?
                (:?(?P<second>[0-9]{1,2})([.,](?P<fraction>[0-9]+))?)?
                (?P<zone>Z | (?P<sign>[-+])(?P<zone_hour>[0-9]{2}):?(?P<zone_minute>[0-9]{2})?)?
            )?
        )?
    )?
    """,
    re.VERBOSE,
)


def parse_iso8601(text):
    """Return an aware UTC datetime; a time without a zone is UTC.

    :raises ValueError: when `text` is not such a timestamp or is out of range.
    """
    match = _ISO8601.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    part = match.groupdict()
    fraction = (part["fraction"] or "")[:6].ljust(6, "0")
    local = dt.datetime(
        int(part["year"]),
        int(part["month"] or part["monthdash"] or 1),
        int(part["day"] or part["daydash"] or 1),
        int(part["hour"] or 0),
        int(part["minute"] or 0),
        int(part["second"] or 0),
        int(fraction),
        tzinfo=_zone(part),
    )
    try:
        return local.astimezone(dt.UTC)
    except OverflowError as error:
        raise ValueError(f"out of range: {text!r}") from error


def _zone(part):
    if not part["sign"]:
        return dt.UTC
    offset = dt.timedelta(hours=int(part["zone_hour"]), minutes=int(part["zone_minute"] or 0))
    return dt.timezone(-offset if part["sign"] == "-" else offset)


def format_timestamp(value):
    """Render as Glance v1 did: UTC, six fractional digits, no zone suffix."""
    if value.utcoffset() != ZERO:
        value = value.astimezone(dt.UTC)
    # YYYY-MM-DDTHH:MM:SS.ffffff, without the +00:00.
    return value.isoformat(timespec="microseconds")[:26]
