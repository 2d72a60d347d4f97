import threading

import sqlalchemy as sa

from app.db import db


class BackgroundLoop(threading.Thread):
    """A thread for the span of a `with` block: `run` loops while `self.running`.

    Leaving the block, even by a failure, stops and joins it, so no thread
    outlives its test.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.running = True

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.running = False
        self.join(timeout=60)


def image_ids(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return [image["id"] for image in response.get_json()["images"]]


def error_message(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


def fingerprint(app):
    """A digest of every stored image, property and membership: equal digests, unchanged data."""
    with app.app_context():
        return tuple(
            db.session.scalar(
                sa.text(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t")
            )
            for table in ("images", "image_properties", "image_members")
        )
