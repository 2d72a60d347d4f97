"""Debian's haproxy in the foreground with a rendered configuration, for drills."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    check_alive,
    free_port,
    listening,
    stop,
    wait_until_answering,
)


class HAProxy:
    """`haproxy -db` running the configuration `render(bind)` gives for a free loopback port.

    Its messages (and the log, if the configuration logs to stderr) go to
    `log_path`. If another process takes the port before haproxy binds it,
    another one is tried.
    """

    ATTEMPTS = 5

    def __init__(self, render):
        self.folder = Path(tempfile.mkdtemp(prefix="image-catalogue-haproxy-"))
        self.config_path, self.log_path = self.folder / "haproxy.cfg", self.folder / "haproxy.log"
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            self.config_path.write_text(render(f"127.0.0.1:{self.port}"))
            self.process = self._start()
            if not self._lost_the_port():
                return
        raise ProcessFailed(f"haproxy could not bind a port in {self.ATTEMPTS} attempts")

    def _start(self):
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _lost_the_port(self):
        """Wait until haproxy listens (True if it exited because its port was taken)."""
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "cannot bind socket" in self.log_path.read_text(errors="replace"):
                    return True
                check_alive(self.process, self.log_path)
            if listening(self.port):
                return False
            time.sleep(0.05)
        raise ProcessFailed(f"haproxy did not listen on {self.port} within the deadline")

    def wait_until_serving(self, url, **options):
        """Wait until a GET of `url` (through haproxy) answers 200; return self."""
        wait_until_answering(
            url,
            self.process,
            accept=lambda response: response.status_code == 200,
            log_path=self.log_path,
            **options,
        )
        return self

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)
