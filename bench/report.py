"""The benchmark's results: JSON, a Markdown table and a chart in bench/results/."""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def stack_ceiling(hello_rps, pgbench_tps):
    """What a zero-cost Python layer could serve: the hello app's time plus the SQL's."""
    return 1 / (1 / hello_rps + 1 / pgbench_tps)


def write(results):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "results.md").write_text(markdown(results))
    chart(results, RESULTS / "results.png")
    print((RESULTS / "results.md").read_text())


def markdown(results):
    machine = results["machine"]
    low, high = (str(count) for count in (results["connections"][0], results["connections"][-1]))
    hello = results["hello"]
    lines = [
        f"# Benchmark results ({machine['date']})",
        "",
        f"{results['count']:,} images; {machine['cpus']} CPUs ({machine['cpu']}), "
        f"{machine['memory_gb']} GB; wrk {results['duration']} s per cell through nginx -> "
        f"gunicorn, each cell the median of {results.get('runs', 1)} interleaved runs; "
        "pgbench with 16 clients on each request's SQL.",
        "",
        f"Hello-app ceiling: {hello[low]['rps']:.0f} req/s at {low} connections, "
        f"{hello[high]['rps']:.0f} req/s at {high}. Stack ceiling of a request = "
        "1 / (1/hello + 1/pgbench of its SQL), both from this run.",
        "",
        f"| request | req/s @{low} | % of hello | stack ceiling | % of ceiling | p50 ms | "
        f"p99 ms | req/s @{high} | p99 ms @{high} | DB exec ms | pgbench tps | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results["types"].items():
        at_low, at_high = result["wrk"][low], result["wrk"][high]
        if result.get("method", "GET") != "GET":
            name = f"{name} ({result['method']})"
        ceiling = stack_ceiling(hello[low]["rps"], result["pgbench_tps"])
        lines.append(
            f"| {name} | {at_low['rps']:.0f} | {100 * at_low['rps'] / hello[low]['rps']:.0f}% | "
            f"{ceiling:.0f} | {100 * at_low['rps'] / ceiling:.0f}% | {at_low['p50']:.1f} | "
            f"{at_low['p99']:.1f} | {at_high['rps']:.0f} | {at_high['p99']:.1f} | "
            f"{result['db_execution_ms']:.2f} | {result['pgbench_tps']:.0f} | "
            f"{at_low['errors'] + at_high['errors']} |"
        )
    rss = results["worker_rss_mb"]
    lines += ["", f"Worker RSS (MB) before the app runs: {rss['before']}; after: {rss['after']}."]
    if "soak" in results:
        soak = results["soak"]
        lines.append(
            f"Soak: {soak['seconds']} s of the no-filter request at {high} connections, "
            f"{soak['rps']:.0f} req/s, {soak['errors']} errors; worker RSS (MB) "
            f"{soak['rss_mb_at_start']} at its start, {soak['rss_mb_at_end']} at its end."
        )
    if "tiers" in results:
        lines += ["", *tiers_table(results["tiers"])]
    plans = results["plans"]
    lines += [
        "",
        f"Plan check (`images check-plans`, full report in plans.txt): "
        f"{'passed' if plans['passed'] else 'FAILED'}; {plans['summary']}.",
    ]
    return "\n".join(lines) + "\n"


def tiers_table(tiers):
    """CPU milliseconds each tier spent per request (nginx, gunicorn, PgBouncer, PostgreSQL)."""
    lines = [
        f"CPU per request by tier ({tiers['request']}, {tiers['requests']} requests through "
        "nginx, gunicorn, PgBouncer and PostgreSQL; user + system time):",
        "",
        "| tier | CPU ms per request |",
        "|---|---|",
    ]
    for tier, milliseconds in tiers["cpu_ms_per_request"].items():
        lines.append(f"| {tier} | {milliseconds:.3f} |")
    return lines


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["types"])
    figure, axis = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(results["connections"])
    for index, connections in enumerate(str(count) for count in results["connections"]):
        values = [results["types"][name]["wrk"][connections]["rps"] for name in names]
        axis.bar(
            [position + index * width for position in range(len(names))],
            values,
            width,
            label=f"{connections} connections",
        )
    ceilings = [
        stack_ceiling(
            results["hello"][str(results["connections"][0])]["rps"], result["pgbench_tps"]
        )
        for result in results["types"].values()
    ]
    axis.plot(range(len(names)), ceilings, "k_", markersize=18, label="stack ceiling")
    axis.set_xticks(
        [position + width / 2 for position in range(len(names))], names, rotation=25, ha="right"
    )
    axis.set_yscale("log")
    axis.set_ylabel("requests per second")
    axis.set_title(f"The v1 API at {results['count']:,} images ({results['machine']['cpus']} CPUs)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
