"""Dumping listing rows fast: a function generated from ImageSchema's declared fields.

ImageSchema stays the one definition of an image (the OpenAPI document, the
brief fields, the tests). At start-up its fields are compiled, in the way
toastedmarshmallow did for marshmallow 2, into one straight-line function
that turns row tuples into exactly the dicts `ImageSchema(many=True).dump`
gives (tests/test_serializer.py holds them equal on random rows): no
per-field method calls, no attribute lookups by name. A field, option or hook
the compiler does not know makes start-up fail rather than dump differently.
"""

from marshmallow import fields
from marshmallow.utils import ensure_text_type

from app.images.schemas import GlanceTimestamp
from app.images.timestamps import format_timestamp


class UncompilableSchema(Exception):
    """The schema has something the compiler cannot reproduce exactly; it says what."""


def _text(value):
    return None if value is None else ensure_text_type(value)


def _integer(value):
    return None if value is None else int(value)


# For each field class (exactly that class), the expression dumping a value
# `{v}`, written to match the class's _serialize in marshmallow 4; the common
# case (a str, an int) is answered without a call.
_TEMPLATES = {
    fields.String: "({v} if {v}.__class__ is str else _text({v}))",
    fields.UUID: "(None if {v} is None else str({v}))",
    fields.Integer: "({v} if {v}.__class__ is int else _integer({v}))",
    fields.Boolean: "{v}",
    GlanceTimestamp: "(None if {v} is None else _timestamp({v}))",
}
_NAMESPACE = {"_text": _text, "_integer": _integer, "_timestamp": format_timestamp}


def compile_dumper(schema, columns):
    """Return dump(rows) for rows that are tuples of `columns`, equal to `schema.dump(dicts)`.

    :raises UncompilableSchema: naming the field, option or hook that prevents it.
    """
    if schema._hooks["pre_dump"] or schema._hooks["post_dump"]:
        raise UncompilableSchema(f"{type(schema).__name__} has dump hooks")
    names = [f"c{position}" for position in range(len(columns))]
    entries = []
    for name, field in schema.dump_fields.items():
        attribute = field.attribute or name
        if attribute not in columns:
            raise UncompilableSchema(f"field {name!r} reads {attribute!r}, not a column")
        value = names[columns.index(attribute)]
        entries.append(f"{(field.data_key or name)!r}: {_expression(name, field, value)}")
    source = (
        "def dump(rows):\n"
        f"    return [{{{', '.join(entries)}}} for ({', '.join(names)},) in rows]\n"
    )
    namespace = dict(_NAMESPACE)
    exec(compile(source, f"<compiled {type(schema).__name__}>", "exec"), namespace)  # noqa: S102
    return namespace["dump"]


def _expression(name, field, value):
    if getattr(field, "as_string", False):
        raise UncompilableSchema(f"field {name!r} uses as_string")
    if type(field) in _TEMPLATES:
        return _TEMPLATES[type(field)].format(v=value)
    if type(field) is fields.Dict:
        return _dict_expression(name, field, value)
    raise UncompilableSchema(f"field {name!r} is a {type(field).__name__}, which it cannot compile")


def _dict_expression(name, field, value):
    # Only a mapping of strings to strings (None stays None).
    if not (type(field.key_field) is fields.String and type(field.value_field) is fields.String):
        raise UncompilableSchema(f"field {name!r} is a Dict of other than strings")
    key, item = _TEMPLATES[fields.String].format(v="k"), _TEMPLATES[fields.String].format(v="x")
    return f"(None if {value} is None else {{{key}: {item} for k, x in {value}.items()}})"
