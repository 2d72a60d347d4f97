"""make bench-tune: gunicorn settings measured against each other on the no-filter request.

Worker count, preload_app and the worker class, each served by the shipped
config with one setting changed, behind the shipped nginx site, in one run.
Results: bench/results/gunicorn.md (the choice in app/serving/gunicorn_conf.py).
"""

import argparse
import statistics
import sys

from bench import database, report
from bench.serving import median_cell, rss_mb, served, wrk

VARIANTS = [
    ("sync, 2 workers", "2", []),
    ("sync, 3 workers", "3", []),
    ("sync, 4 workers", "4", []),
    ("sync, 5 workers (2 x CPUs + 1)", "5", []),
    ("sync, 8 workers", "8", []),
    ("sync, 5 workers, preload_app", "5", ["--preload"]),
    ("gthread, 3 workers x 4 threads", "3", ["--worker-class", "gthread", "--threads", "4"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    environment, app = database.catalogue_app()
    database.prepare_catalogue(app, environment, options.count)
    token = database.issue_tokens(environment)["member"]
    measured = {name: [] for name, _, _ in VARIANTS}
    # Rounds interleave the variants, so a noisy minute on a shared machine
    # does not land on one of them only; each cell is the median round.
    for round_number in range(1, options.rounds + 1):
        for name, workers, flags in VARIANTS:
            print(f"round {round_number}, gunicorn: {name}", file=sys.stderr)
            sized = {**environment, "WEB_CONCURRENCY": workers}
            with served(sized, options=flags) as (nginx, master):
                low = wrk(nginx, "/v1.1/images/detail", token, 16, options.duration)
                high = wrk(nginx, "/v1.1/images/detail", token, 64, options.duration)
                measured[name].append((low, high, max(rss_mb(master))))
    lines = [
        "# gunicorn settings, measured",
        "",
        f"The no-filter request at {options.count:,} images through nginx, wrk "
        f"{options.duration} s per cell, the median of {options.rounds} interleaved rounds; "
        "the rest of app/serving/gunicorn_conf.py unchanged.",
        "",
        "| setting | req/s @16 | p99 ms @16 | req/s @64 | p99 ms @64 | largest worker RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, rounds in measured.items():
        low = median_cell([cell for cell, _, _ in rounds])
        high = median_cell([cell for _, cell, _ in rounds])
        lines.append(
            f"| {name} | {low['rps']:.0f} | {low['p99']:.1f} | "
            f"{high['rps']:.0f} | {high['p99']:.1f} | "
            f"{statistics.median(memory for _, _, memory in rounds)} |"
        )
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    (report.RESULTS / "gunicorn.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
