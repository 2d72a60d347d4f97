"""What several test modules share: constants, builders, and readers of answers."""

import datetime as dt
import http.server
import json
import re
import threading
import time
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from app.db import db
from app.images.headers import META_HEADERS_MAX_BYTES, meta_headers_bytes
from app.images.schemas import ImageSchema
from app.images.timestamps import parse_iso8601
from app.loading import synthetic, upsert
from deploy.processes import READY_DEADLINE_SECONDS

ROOT = Path(__file__).resolve().parent.parent
DETAIL = "/v1.1/images/detail"
REQUESTS_TOTAL = "image_catalogue_requests_total"
BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# The reference image as Glance v1 listed it (Huawei's sample; the demo catalogue's cirros).
CIRROS = {
    "status": "active",
    "deleted_at": None,
    "name": "cirros",
    "deleted": False,
    "container_format": "bare",
    "created_at": "2016-05-22T06:04:20.425843",
    "disk_format": "qcow2",
    "updated_at": "2016-05-22T06:04:22.719791",
    "min_disk": 0,
    "protected": False,
    "id": "3c3d1d01-b48a-4639-8a88-08be3b9b5d78",
    "min_ram": 0,
    "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
    "owner": "23f4cb75768d4febb39542ef6fe169f3",
    "is_public": True,
    "virtual_size": None,
    "properties": {},
    "size": 13167616,
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class BackgroundLoop(threading.Thread):
    """A thread for the span of a `with` block: `run` loops while `self.running`
    (or waits on `self.stop`, an Event).

    Leaving the block, even by a failure, stops and joins it, so no thread
    outlives its test.
    """

    join_seconds = 60

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    @property
    def running(self):
        return not self.stop.is_set()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.join(timeout=self.join_seconds)


def load_synthetic(app, count, *, seed, projects):
    """Load `images generate`'s catalogue of `count` images (as of 2026-11-01) into `app`'s."""
    records = synthetic.generate_records(
        count, seed=seed, projects=projects, until=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    )
    with app.app_context():
        upsert.load(db.session, records, source="generate")


def import_line(**fields):
    """One line of an `images import` file: CIRROS with `fields` changed or added."""
    return json.dumps({**CIRROS, **fields})


def headers_filled_line(size=META_HEADERS_MAX_BYTES, properties=128, **fields):
    """An import line (CIRROS with `fields`) with `properties` properties (Glance's default
    quota is 128) whose image-show metadata headers take exactly `size` bytes."""
    names = [f"p{number:03d}" for number in range(properties)]
    record = {**CIRROS, **fields, "properties": dict.fromkeys(names, "")}
    shown = {**record, **{key: parse_iso8601(record[key]) for key in ("created_at", "updated_at")}}
    room = size - meta_headers_bytes(ImageSchema().dump(shown))
    assert room >= 0, "that many properties take more than `size` bytes with empty values"
    for number, name in enumerate(names):
        record["properties"][name] = "v" * (room // properties + (number < room % properties))
    return json.dumps(record)


def polling_recipes():
    """The Python blocks of docs/api.md's Polling section, run in one namespace: the recipes."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Polling", 1)[1].split("\n## ", 1)[0]
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - the docs' own code
    return namespace


def listed_images(base_url, token, **params):
    """{id: image} of what GET /v1/images/detail with `params` shows `token`, page by page."""
    images, marker = {}, None
    while True:
        answer = requests.get(
            f"{base_url}/v1/images/detail",
            params={**params, "limit": 1000, **({"marker": marker} if marker else {})},
            headers={"X-Auth-Token": token},
            timeout=60,
        )
        answer.raise_for_status()
        page = answer.json()["images"]
        images.update((image["id"], image) for image in page)
        if len(page) < 1000:
            return images
        marker = page[-1]["id"]


def metric_total(text, metric, **labels):
    """The sum of `metric`'s samples in Prometheus `text` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or sample[1] != metric:
            continue
        if labels.items() <= dict(_LABEL.findall(sample[2] or "")).items():
            total += float(sample[3])
    return total


def scraped_total(metrics_url, metric, **labels):
    """metric_total of what `metrics_url` (a live /metrics) answers now."""
    return metric_total(requests.get(metrics_url, timeout=30).text, metric, **labels)


def served_total(client, metric, **labels):
    """metric_total of what the Flask test `client`'s /metrics answers now."""
    return metric_total(client.get("/metrics").get_data(as_text=True), metric, **labels)


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


class SteadyClient(BackgroundLoop):
    """Requests `url` back to back until the `with` block ends, recording every outcome.

    Tests wait on what the client saw (`wait_for`), never for a span of time.
    """

    def __init__(self, url, token, verify=True):
        super().__init__()
        self.url, self.headers, self.verify = url, {"X-Auth-Token": token}, verify
        self.outcomes = []
        self.changed = threading.Condition()

    def run(self):
        while self.running:
            started = time.monotonic()
            try:
                response = requests.get(
                    self.url, headers=self.headers, timeout=30, verify=self.verify
                )
                outcome = (
                    response.status_code,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type"),
                )
            except requests.RequestException as error:
                outcome = (type(error).__name__, None, None)
            with self.changed:
                self.outcomes.append((outcome, time.monotonic() - started))
                self.changed.notify_all()

    def statuses(self):
        return [outcome[0] for outcome, _ in self.outcomes]

    def wait_for(self, description, predicate, timeout=READY_DEADLINE_SECONDS):
        """Wait until `predicate(statuses so far)` holds; fail naming `description`."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.statuses()), timeout):
                runs = [(status, len(list(group))) for status, group in groupby(self.statuses())]
                pytest.fail(f"the client never saw {description}; it saw {runs}")

    def wait_for_more(self, count, status=200):
        """Wait until `count` more answers with `status` than there are now."""
        wanted = self.statuses().count(status) + count
        self.wait_for(f"{wanted} answers {status}", lambda seen: seen.count(status) >= wanted)


def ends_with(status, count):
    return lambda seen: len(seen) >= count and set(seen[-count:]) == {status}


@contextmanager
def serving_bytes(data):
    """A loopback HTTP server answering every GET with `data` (and HEAD with its length, as
    Glance's http store asks); its base URL."""

    class OneFile(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the standard library's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.do_HEAD()
            self.wfile.write(data)

        def log_message(self, *arguments):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneFile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
