from flask.json.provider import DefaultJSONProvider


class GlanceJSONProvider(DefaultJSONProvider):
    """JSON as Glance v1 clients saw it: keys in the order built, charset named."""

    sort_keys = False
    mimetype = "application/json; charset=UTF-8"
