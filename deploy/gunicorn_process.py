"""gunicorn with the shipped settings, started from a checkout, its log kept in a file."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.serving import GUNICORN_SETTINGS
from deploy import CHECKOUT
from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    check_alive,
    stop,
    wait_until_answering,
)

_LISTENING = re.compile(r"Listening at: http://[^:]+:(\d+)")


def start_gunicorn(
    environment=None, *, wsgi_target="wsgi:app", options=(), root=CHECKOUT, **popen_options
):
    """gunicorn with the shipped settings (and command-line `options` over them).

    PORT, DATABASE_URL, WEB_CONCURRENCY... come from `environment`; the code
    and the settings from the checkout at `root`.
    """
    settings = Path(root) / Path(GUNICORN_SETTINGS).relative_to(CHECKOUT)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(settings), *options, wsgi_target],
        cwd=root,
        env={**os.environ, **(environment or {})},
        **popen_options,
    )


class Gunicorn:
    """A started gunicorn whose log goes to a file, shown when the process fails.

    With port 0 the kernel picks a free port and gunicorn reports it in its
    log ("Listening at: ..."), so no other process can take it in between.
    """

    def __init__(
        self,
        environment=None,
        *,
        wsgi_target="wsgi:app",
        port=0,
        options=(),
        root=CHECKOUT,
        **popen_options,
    ):
        self.log_dir = Path(tempfile.mkdtemp(prefix="image-catalogue-gunicorn-"))
        self.log_path = self.log_dir / "gunicorn.log"
        with self.log_path.open("wb") as log:
            self.process = start_gunicorn(
                {**(environment or {}), "PORT": str(port)},
                wsgi_target=wsgi_target,
                options=options,
                root=root,
                stdout=subprocess.DEVNULL,
                stderr=log,
                **popen_options,
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

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.log_dir, ignore_errors=True)
