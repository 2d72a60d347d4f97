"""make bench-writes: v1 writes through the service against Glance v2 directly, in one run.

A real Keystone and Glance 33 (deploy/openstack_cloud.py) on the benchmark's
PostgreSQL, the service under gunicorn behind the shipped nginx site, taking
writes through that Glance. Measured, each the median of --runs: a --size-mib
(1024) upload and download through the service (behind nginx, as shipped),
through its gunicorn alone (the service's own share) and straight to Glance
v2, with the most a service worker's memory grew meanwhile; then for --seconds
each, create-update-delete round trips (metadata only) through the service
and straight to Glance. Results: bench/results/writes.md and writes.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from bench import database, report
from bench.serving import served
from deploy.commands import run_catalogue
from deploy.openstack_cloud import start_cloud

PIECE = bytes(range(256)) * 4096  # 1 MiB
DATABASES = ("bench_keystone", "bench_glance", "bench_writes")


def main():
    options = _arguments()
    server_url = database.database_url()
    urls = {name: database.fresh_database(server_url, name) for name in DATABASES}
    with tempfile.TemporaryDirectory(prefix="image-catalogue-bench-writes-") as folder:
        cloud = start_cloud(
            Path(folder),
            keystone_database_url=urls["bench_keystone"],
            glance_database_url=urls["bench_glance"],
            report=lambda line: print(line, file=sys.stderr),
        )
        try:
            environment = {
                **os.environ,
                "DATABASE_URL": urls["bench_writes"],
                **cloud.catalogue_settings(),
            }
            run_catalogue("db", "upgrade", env=environment, check=True, capture_output=True)
            with served(environment) as (nginx, master):
                results = _measure(options, cloud, nginx, master)
        finally:
            cloud.stop()
    _write(results)


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the image uploaded")
    parser.add_argument("--runs", type=int, default=3, help="transfers each way; the median")
    parser.add_argument("--seconds", type=int, default=10, help="of round trips each way")
    return parser.parse_args()


def _measure(options, cloud, nginx, master):
    size = options.size_mib * len(PIECE)
    (port,) = [c.laddr.port for c in master.net_connections() if c.status == psutil.CONN_LISTEN]
    sides = {
        "service": Service(f"{nginx.url}/v1/images", cloud),
        # The same gunicorn without nginx in front: the service's own share.
        "gunicorn": Service(f"http://127.0.0.1:{port}/v1/images", cloud),
        "glance": Glance(f"{cloud.glance_url}/v2/images", cloud),
    }
    transfers = {kind: {name: [] for name in sides} for kind in ("upload", "download")}
    grew = []
    for run in range(1, options.runs + 1):
        print(f"transfers, run {run}: {options.size_mib} MiB each way", file=sys.stderr)
        for name, side in sides.items():
            with _PeakMemory(master) as memory:
                seconds, image_id = _timed(side.upload, size, options.size_mib)
                transfers["upload"][name].append(seconds)
                seconds, received = _timed(side.download, image_id)
                transfers["download"][name].append(seconds)
            assert received == size, (name, received, size)
            side.delete(image_id)
            if name != "glance":
                grew.append(memory.grew_mib)
    service, glance = sides["service"], sides["glance"]
    round_trips = {}
    for name, side in (("service", service), ("glance", glance)):
        print(f"round trips: {name}, {options.seconds} s", file=sys.stderr)
        round_trips[name] = _round_trips(side, options.seconds)
    return {
        "machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC")},
        "size_mib": options.size_mib,
        "runs": options.runs,
        "seconds": {
            kind: {name: statistics.median(times) for name, times in by.items()}
            for kind, by in transfers.items()
        },
        "all_seconds": transfers,
        "worker_memory_grew_mib": grew,
        "round_trips_per_second": round_trips,
    }


def _timed(work, *arguments):
    started = time.perf_counter()
    result = work(*arguments)
    return time.perf_counter() - started, result


class _PeakMemory(threading.Thread):
    """How much the service's largest worker grew (MiB) while the `with` block ran."""

    def __init__(self, master):  # a psutil.Process
        super().__init__(daemon=True)
        self.master, self.stopping = master, threading.Event()
        self.start_rss = self.peak = self._rss()

    def _rss(self):
        return max(child.memory_info().rss for child in self.master.children())

    def run(self):
        while not self.stopping.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        self.join()
        self.grew_mib = round((self.peak - self.start_rss) / 2**20, 1)


def _pieces(count):
    return (PIECE for _ in range(count))


class _Side:
    """Image calls to `url` (.../images) as the demo project."""

    def __init__(self, url, cloud):
        self.url, self.cloud = url, cloud

    def _headers(self, **more):
        return {"X-Auth-Token": self.cloud.token("demo"), **more}

    def _received(self, url):
        """How many bytes of data `url` sends, read as they come."""
        with requests.get(url, headers=self._headers(), stream=True, timeout=3600) as answer:
            answer.raise_for_status()
            return sum(len(piece) for piece in answer.iter_content(1 << 20))

    def delete(self, image_id):
        answer = requests.delete(f"{self.url}/{image_id}", headers=self._headers(), timeout=60)
        answer.raise_for_status()


class Service(_Side):
    """The v1 writes through the service (through nginx)."""

    def upload(self, size, pieces):
        answer = requests.post(
            self.url,
            data=_pieces(pieces),
            headers=self._headers(
                **{
                    "Content-Type": "application/octet-stream",
                    "x-image-meta-name": "bench",
                    "x-image-meta-disk_format": "raw",
                    "x-image-meta-container_format": "bare",
                    "x-image-meta-size": str(size),
                }
            ),
            timeout=3600,
        )
        answer.raise_for_status()
        return answer.json()["image"]["id"]

    def download(self, image_id):
        return self._received(f"{self.url}/{image_id}")

    def create(self):
        answer = requests.post(
            self.url,
            headers=self._headers(
                **{
                    "x-image-meta-name": "trip",
                    "x-image-meta-disk_format": "raw",
                    "x-image-meta-container_format": "bare",
                }
            ),
            timeout=60,
        )
        answer.raise_for_status()
        return answer.json()["image"]["id"]

    def update(self, image_id):
        requests.put(
            f"{self.url}/{image_id}",
            headers=self._headers(**{"x-image-meta-name": "trip-renamed"}),
            timeout=60,
        ).raise_for_status()


class Glance(_Side):
    """The same, straight to Glance v2."""

    def upload(self, size, pieces):
        image_id = self.create()
        requests.put(
            f"{self.url}/{image_id}/file",
            data=_pieces(pieces),
            headers=self._headers(**{"Content-Type": "application/octet-stream"}),
            timeout=3600,
        ).raise_for_status()
        return image_id

    def download(self, image_id):
        return self._received(f"{self.url}/{image_id}/file")

    def create(self):
        answer = requests.post(
            self.url,
            json={"name": "trip", "disk_format": "raw", "container_format": "bare"},
            headers=self._headers(),
            timeout=60,
        )
        answer.raise_for_status()
        return answer.json()["id"]

    def update(self, image_id):
        requests.patch(
            f"{self.url}/{image_id}",
            data=json.dumps([{"op": "replace", "path": "/name", "value": "trip-renamed"}]),
            headers=self._headers(
                **{"Content-Type": "application/openstack-images-v2.1-json-patch"}
            ),
            timeout=60,
        ).raise_for_status()


def _round_trips(side, seconds):
    """Create, update and delete round trips per second (one after the other)."""
    done, deadline = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        image_id = side.create()
        side.update(image_id)
        side.delete(image_id)
        done += 1
    return round(done / (time.monotonic() - started), 2)


def _write(results):
    report.RESULTS.mkdir(parents=True, exist_ok=True)
    (report.RESULTS / "writes.json").write_text(json.dumps(results, indent=2) + "\n")
    (report.RESULTS / "writes.md").write_text(_markdown(results))
    print((report.RESULTS / "writes.md").read_text())


def _markdown(results):
    seconds, trips = results["seconds"], results["round_trips_per_second"]
    lines = [
        "# v1 writes through the service against Glance v2 directly "
        f"({results['machine']['date']})",
        "",
        f"{results['machine']['cpus']} CPUs; Keystone 30 and Glance 33 (file store) on loopback; "
        "the service under gunicorn behind the shipped nginx site; each transfer the median of "
        f"{results['runs']} runs (`make bench-writes`).",
        "",
        "| transfer | through nginx and the service (s) | the service's gunicorn alone (s) "
        "| Glance v2 directly (s) | overhead through nginx | overhead of gunicorn alone |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("upload", "download"):
        service, alone, glance = (seconds[kind][name] for name in ("service", "gunicorn", "glance"))
        lines.append(
            f"| {results['size_mib']} MiB {kind} | {service:.2f} | {alone:.2f} | {glance:.2f} | "
            f"{100 * (service - glance) / glance:+.1f}% | {100 * (alone - glance) / glance:+.1f}% |"
        )
    lines += [
        "",
        f"A service worker's memory grew by at most {max(results['worker_memory_grew_mib'])} MiB "
        f"during the transfers (each run: {results['worker_memory_grew_mib']} MiB).",
        "",
        "| round trips (create, update, delete; metadata only) | per second |",
        "|---|---|",
        f"| through the service (v1) | {trips['service']} |",
        f"| Glance v2 directly | {trips['glance']} |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
