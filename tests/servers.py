"""The service's real processes for tests, on loopback ports the kernel picks."""

import shutil
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import pymysql
import trustme

from deploy.glance_schemas import load_schema
from deploy.gunicorn_process import Gunicorn
from deploy.processes import free_port, listening, stop, wait_until_ready


def start_service(database_url, port=0, **environment):
    """gunicorn with the shipped config and two workers, returned once /healthz answers."""
    server = Gunicorn(
        {
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **environment,
        },
        port=port,
    )
    try:
        return server.wait_until_serving()
    except BaseException:
        server.stop()
        raise


def tls_files(folder, server_name="localhost"):
    """A CA and a certificate for `server_name` it signed: (server_name, cert, key, ca) paths."""
    authority = trustme.CA()
    issued = authority.issue_cert(server_name)
    certificate, key, ca = (folder / name for name in ("server.crt", "server.key", "ca.crt"))
    certificate.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return server_name, str(certificate), str(key), str(ca)


class MariaDB:
    """A MariaDB server of a test's own (Debian's mariadb-server), on a free loopback port.

    `root_url` writes through the Unix socket as root; `url(user)` is a TCP
    URL for a user made with `create_user`.
    """

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="image-catalogue-mariadb-"))
        self.datadir, self.socket = self.folder / "data", self.folder / "mysqld.sock"
        shutil.chown(self.folder, "mysql", "mysql")
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=mysql",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--log-error={self.folder / 'error.log'}",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ],
            stderr=subprocess.DEVNULL,
        )
        wait_until_ready(
            self.process,
            lambda: listening(self.port) and self.socket.exists(),
            "mariadbd",
            log_path=self.folder / "error.log",
        )

    @property
    def root_url(self):
        return f"mysql+pymysql://root@localhost/{{database}}?unix_socket={self.socket}"

    def create_database(self, name, *, reader, schema):
        """A database with a schema dump, and a user `reader` who may only read Glance's tables.

        Returns (the root's URL, the reader's URL).
        """
        with closing(pymysql.connect(unix_socket=str(self.socket), user="root")) as admin:
            admin.cursor().execute(f"CREATE DATABASE {name}")
        load_schema(self.root_url.format(database=name), schema)
        with closing(pymysql.connect(unix_socket=str(self.socket), user="root")) as admin:
            cursor = admin.cursor()
            cursor.execute(f"CREATE USER '{reader}'@'127.0.0.1' IDENTIFIED BY 'reader-secret'")
            # The grants docs/operations.md gives the mirror's user, no more.
            for table in ("images", "image_properties", "image_members"):
                cursor.execute(f"GRANT SELECT ON {name}.{table} TO '{reader}'@'127.0.0.1'")
        return (
            self.root_url.format(database=name),
            f"mysql+pymysql://{reader}:reader-secret@127.0.0.1:{self.port}/{name}",
        )

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)
