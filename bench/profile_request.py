"""make bench-profile: where the time of one 25-image request goes, measured in-process.

Each part is timed on its own (median of many runs) on a catalogue of
--count images; "the rest" is the whole request minus the parts: Flask and
Werkzeug, auth (a cached token), request ids, size limits, metrics and the
access log line. Also times the alternatives on the same page: marshmallow's
own dump, Flask's JSON provider and json.dumps. Prints Markdown tables.
"""

import argparse
import json
import os
import statistics
import time

from werkzeug.datastructures import MultiDict

from app import db as database
from app.images import repository
from app.images.routes import dump_detail, encoder
from app.images.schemas import ImageQuerySchema, ImageSchema, query_params
from app.tokens import find_caller, hash_token
from bench import database as bench_database

PROFILE_PGDATA = "/var/tmp/image-catalogue-profile/pgdata"


def median_ms(work, runs):
    for _ in range(min(50, runs)):
        work()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return 1000 * statistics.median(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2000)
    options = parser.parse_args()
    # A catalogue of its own: --count differs from make bench's, which would reload its own.
    environment, app = bench_database.catalogue_app(PROFILE_PGDATA)
    # The access log is written as in production, to a stream that costs nothing.
    app.logger.handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115
    bench_database.prepare_catalogue(app, environment, options.count)
    token = bench_database.issue_tokens(environment)["member"]
    client, headers = app.test_client(), {"X-Auth-Token": token}
    parts = {
        "whole request (Flask test client)": median_ms(
            lambda: client.get("/v1.1/images/detail", headers=headers), options.runs
        )
    }
    with app.test_request_context("/v1.1/images/detail"):
        schema, arguments = ImageQuerySchema(), MultiDict()
        query = schema.load(query_params(arguments))
        caller, _ = database.read(lambda reader: find_caller(reader, hash_token(token)))
        rows = database.read(lambda reader: repository.list_images(reader, caller, query))
        images = dump_detail(rows)
        parts["query parse (marshmallow load)"] = median_ms(
            lambda: schema.load(query_params(arguments)), options.runs
        )
        parts["listing SQL round trip (settings in the same message)"] = median_ms(
            lambda: database.read(lambda reader: repository.list_images(reader, caller, query)),
            options.runs,
        )
        parts["image dump (compiled from ImageSchema)"] = median_ms(
            lambda: dump_detail(rows), options.runs
        )
        parts["JSON encoding (one json.JSONEncoder)"] = median_ms(
            lambda: encoder.encode({"images": images}), options.runs
        )
    parts["the rest"] = parts["whole request (Flask test client)"] - sum(
        value for name, value in parts.items() if not name.startswith("whole")
    )
    print("| part of a 25-image request | ms |\n|---|---|")
    for name, value in parts.items():
        print(f"| {name} | {value:.3f} |")
    _compare(app, rows, options.runs)


def _compare(app, rows, runs):
    """What the alternatives cost: marshmallow's own dump, Flask's JSON provider, json.dumps."""
    dicts = [dict(zip(repository.LISTING_COLUMNS, row, strict=True)) for row in rows]
    schema, images = ImageSchema(many=True), dump_detail(rows)
    page = {"images": images}
    with app.app_context():
        alternatives = {
            "marshmallow ImageSchema(many=True).dump": median_ms(
                lambda: schema.dump(dicts), runs // 4
            ),
            "Flask's JSON provider (app.json.dumps)": median_ms(lambda: app.json.dumps(page), runs),
            "json.dumps(..., separators=(',', ':'))": median_ms(
                lambda: json.dumps(page, separators=(",", ":")), runs
            ),
        }
    print("\n| alternative (25 images) | ms |\n|---|---|")
    for name, value in alternatives.items():
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
