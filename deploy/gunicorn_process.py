"""The service under gunicorn (`image-catalogue serve`) from a checkout, its log in a file."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from deploy import CHECKOUT
from deploy.commands import catalogue_command
from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    check_alive,
    stop,
    wait_until_answering,
)

_LISTENING = re.compile(r"Listening at: http://[^:]+:(\d+)")


def start_gunicorn(
    environment=None, *, app=None, options=(), root=CHECKOUT, program=None, **popen_options
):
    """`image-catalogue serve` (gunicorn: the shipped settings, then `options`) from `root`.

    PORT, DATABASE_URL, WEB_CONCURRENCY... come from `environment`; `app` is
    another WSGI app to serve (the benchmark's hello app); `program` another
    image-catalogue command (an installed one) than this checkout's.
    """
    program = program or catalogue_command()
    command = [*program, "serve", *(("--app", app) if app else ()), *options]
    return subprocess.Popen(
        command, cwd=Path(root), env={**os.environ, **(environment or {})}, **popen_options
    )


class Gunicorn:
    """A started gunicorn whose log goes to a file, shown when the process fails.

    With port 0 the kernel picks a free port and gunicorn reports it in its
    log ("Listening at: ..."), so no other process can take it in between.
    """

    def __init__(
        self, environment=None, *, app=None, port=0, options=(), root=CHECKOUT, program=None
    ):
        self.log_dir = Path(tempfile.mkdtemp(prefix="image-catalogue-gunicorn-"))
        self.log_path = self.log_dir / "gunicorn.log"
        with self.log_path.open("wb") as log:
            self.process = start_gunicorn(
                {**(environment or {}), "HOST": "127.0.0.1", "PORT": str(port)},
                app=app,
                options=options,
                root=root,
                program=program,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.port = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self, path="/healthz", timeout=READY_DEADLINE_SECONDS):
        """Wait for the bound port in the log, then until `path` answers; return self."""
        deadline = time.monotonic() + timeout
        while self.port is None:
            check_alive(self.process, self.log_path)
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif time.monotonic() > deadline:
                raise ProcessFailed(f"gunicorn did not bind within {timeout:.0f} s")
            else:
                time.sleep(0.05)
        wait_until_answering(
            self.url + path,
            self.process,
            timeout=max(deadline - time.monotonic(), 1),
            log_path=self.log_path,
        )
        return self

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.log_dir, ignore_errors=True)
