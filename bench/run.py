"""make bench: the image listing at scale, through gunicorn and nginx, against its ceilings.

Steps: load a deterministic catalogue (images generate); serve a hello-world
Flask app and then the service with the shipped gunicorn config behind the
shipped nginx site; drive each request type with wrk at each connection
count; replay each type's SQL with pgbench (the database's ceiling); time its
statements with EXPLAIN ANALYZE; soak (worker memory); measure the CPU each
tier spends per request with PgBouncer in the path; check every query
shape's plan. Results go to bench/results/ (bench/report.py).
"""

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
from pathlib import Path

import psutil
import sqlalchemy as sa

from bench import database, report
from bench.serving import CpuMeter, median_cell, named, rss_mb, served, tree, wrk
from deploy.cluster import Bouncer
from deploy.commands import run_catalogue


def main():
    options = _arguments()
    environment, app = database.catalogue_app()
    url = environment["DATABASE_URL"]
    database.prepare_catalogue(app, environment, options.count)
    tokens = database.issue_tokens(environment)
    types = database.request_types(app, tokens)
    results = {
        "machine": _machine(),
        "count": options.count,
        "duration": options.duration,
        "connections": options.connections,
        "runs": options.runs,
        "types": {name: {"path": kind.path, "method": kind.method} for name, kind in types.items()},
    }
    hello = {"hello": database.RequestType("/hello", None)}
    with served(environment, "bench.hello:app", "/hello") as (nginx, _):
        results["hello"] = _cells(nginx, hello, options)["hello"]
    # Every request type is asked again and again: those measuring a query
    # are served with no answers kept, those measuring answers given again with them.
    without_reuse = {name: kind for name, kind in types.items() if not kind.reuse}
    with served({**environment, "ANSWER_CACHE_BYTES": "0"}) as (nginx, workers):
        rss_before = rss_mb(workers)
        for name, cells in _cells(nginx, without_reuse, options).items():
            results["types"][name]["wrk"] = cells
        if options.soak:
            results["soak"] = _soak(nginx, workers, types["no filter"], options)
        results["worker_rss_mb"] = {"before": rss_before, "after": rss_mb(workers)}
    with served(environment) as (nginx, _):
        reused = {name: kind for name, kind in types.items() if kind.reuse}
        for name, cells in _cells(nginx, reused, options).items():
            results["types"][name]["wrk"] = cells
    setting = app.extensions["reads"].primary.setting
    for name, kind in types.items():
        print(f"pgbench and EXPLAIN: {name}", file=sys.stderr)
        statements = database.statements_of(app, kind)
        results["types"][name]["db_execution_ms"] = database.execution_ms(url, statements)
        results["types"][name]["pgbench_tps"] = database.pgbench(
            url, statements, setting, options.duration
        )
    results["tiers"] = _tiers(environment, url, types["no filter"], options)
    print("check-plans: EXPLAIN ANALYZE of every query shape", file=sys.stderr)
    results["plans"] = _check_plans(environment)
    report.write(results)


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk/pgbench run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--runs", type=int, default=3, help="wrk runs per cell, interleaved; the median counts"
    )
    parser.add_argument(
        "--soak", type=int, default=0, help="also run the no-filter request this long (RSS check)"
    )
    return parser.parse_args()


def _cells(nginx, types, options):
    """{name: {connections: the median of options.runs wrk cells}} of each request type.

    Rounds interleave the types, so a noisy minute on a shared machine does
    not land on one of them only.
    """
    runs = {name: {count: [] for count in options.connections} for name in types}
    for round_number in range(1, options.runs + 1):
        for name, kind in types.items():
            print(f"wrk round {round_number}: {name}", file=sys.stderr)
            for count in options.connections:
                cell = wrk(
                    nginx, kind.path, kind.token, count, options.duration, kind.method, kind.headers
                )
                runs[name][count].append(cell)
    return {
        name: {str(count): median_cell(cells) for count, cells in by_count.items()}
        for name, by_count in runs.items()
    }


def _soak(nginx, workers, request, options):
    path, token = request.path, request.token
    print(f"soak: {options.soak} s of the no-filter request", file=sys.stderr)
    at_start = rss_mb(workers)
    soak = wrk(nginx, path, token, max(options.connections), options.soak)
    return {
        **soak,
        "seconds": options.soak,
        "rss_mb_at_start": at_start,
        "rss_mb_at_end": rss_mb(workers),
    }


def _tiers(environment, url, request, options):
    """CPU per request of nginx, gunicorn, PgBouncer and PostgreSQL, with PgBouncer in the path."""
    path, token = request.path, request.token
    socket_folder = sa.make_url(url).query["host"]
    with tempfile.TemporaryDirectory(prefix="image-catalogue-bench-") as folder:
        folder = Path(folder)
        os.chmod(folder, 0o755)
        bouncer = Bouncer(folder, "bench", socket_folder, 5432, database=sa.make_url(url).database)
        try:
            through_bouncer = {
                **environment,
                "DATABASE_URL": bouncer.url(),
                "ANSWER_CACHE_BYTES": "0",
            }
            with served(through_bouncer) as (nginx, workers):
                wrk(nginx, path, token, 16, 2)  # warm: every worker's connection open
                tiers = {
                    "nginx": tree(psutil.Process(nginx.process.pid)),
                    "gunicorn (app)": tree(workers),
                    "PgBouncer": tree(psutil.Process(bouncer.process.pid)),
                    "PostgreSQL": named("postgres"),
                }
                wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                with CpuMeter(tiers) as meter:
                    load = wrk(nginx, path, token, 16, options.duration)
                wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            bouncer.stop()
    spent = dict(meter.spent)
    spent["wrk (the load)"] = (wrk_after.ru_utime + wrk_after.ru_stime) - (
        wrk_before.ru_utime + wrk_before.ru_stime
    )
    return {
        "request": "no filter",
        "requests": load["requests"],
        "rps": load["rps"],
        "cpu_ms_per_request": {
            tier: round(1000 * seconds / load["requests"], 3) for tier, seconds in spent.items()
        },
    }


def _check_plans(environment):
    """Run `images check-plans` (its own thresholds); keep its report, return its summary."""
    result = run_catalogue(
        "images", "check-plans", "--show", "20", env=environment, capture_output=True
    )
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    (report.RESULTS / "plans.txt").write_text(result.stdout)
    return {"passed": result.returncode == 0, "summary": result.stdout.strip().splitlines()[-1]}


def _machine():
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


if __name__ == "__main__":
    main()
