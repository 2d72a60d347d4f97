"""A real, minimal OpenStack on loopback for the drills: Keystone 30 and Glance 33.

Each runs under gunicorn from a virtualenv of its own (deploy/openstack_venvs.py),
its database a throwaway one on the tests' PostgreSQL. Keystone holds the
admin, the users `demo` and `other` (each a member of the project of the same
name) and Glance's service user, and lists Glance in its catalog. Glance checks
tokens with keystonemiddleware, stores images in a folder (the `file` store),
reads http locations (the read-only `http` store), and imports by glance-direct
and web-download, which may fetch from 127.0.0.1.
"""

import configparser
import contextlib
import grp
import os
import pwd
import subprocess
import time

import sqlalchemy as sa
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from deploy.openstack_venvs import OPENSTACK_FILES, installed_venv
from deploy.processes import (
    READY_DEADLINE_SECONDS,
    ProcessFailed,
    check_alive,
    free_port,
    stop,
    wait_until_answering,
)

REGION = "RegionOne"
# user: (project, role). Keystone's bootstrap makes the admin and its project,
# and the roles reader, member, manager, admin and service.
USERS = {"admin": ("admin", "admin"), "demo": ("demo", "member"), "other": ("other", "member")}
# Glance's own user, which keystonemiddleware validates tokens as.
GLANCE_USER = ("glance", "service", "service")


def password(user):
    return f"{user}-password"


def start_cloud(folder, *, keystone_database_url, glance_database_url, report=print):
    """Start Keystone and Glance with their state in `folder`; return the OpenStackCloud.

    The databases are new, empty PostgreSQL ones (postgresql:// URLs);
    `report` is told what is installed and how long starting took (once installed).
    """
    venvs = {name: installed_venv(name, report) for name in ("keystone", "glance")}
    started = time.monotonic()
    keystone = Keystone(venvs["keystone"], folder / "keystone")
    glance = Glance(venvs["glance"], folder / "glance", keystone.url)
    try:
        # Each command spends seconds importing: run at once, they share the cores.
        _run_together(
            [
                *keystone.setup_commands(keystone_database_url),
                glance.db_sync_command(glance_database_url),
            ]
        )
        keystone.start()
        glance.start()  # it asks Keystone nothing before its first request
        _run_together([keystone.bootstrap_command()])
        keystone.wait_until_serving()
        sessions = {user: _session(keystone.url, user) for user in USERS}
        _create_accounts(sessions["admin"], keystone.url, glance.url)
        cloud = OpenStackCloud(keystone, glance, glance_database_url, sessions)
        glance.wait_until_serving()
    except BaseException:
        glance.stop()
        keystone.stop()
        raise
    report(f"Keystone and Glance ready in {time.monotonic() - started:.1f} s")
    return cloud


class OpenStackCloud:
    """The running cloud as the drills see it.

    keystone_url (.../v3) and glance_url; glance_database_url (postgresql://,
    as the catalogue's Glance mirror reads it); image_folder (the file store);
    project_ids and keystoneauth1 sessions by user (admin, demo, other), and
    token(user); log_paths by service (keystone, glance). `glance` is Glance's
    API alone: stopped for a `with` block (`glance.down()`, a "Glance down"
    drill), run with other options for one (`glance.configured(...)`), or
    stopped, started and restarted.
    """

    def __init__(self, keystone, glance, glance_database_url, sessions):
        self.keystone, self.glance = keystone, glance
        self.keystone_url = keystone.url
        self.glance_url = glance.url
        self.glance_database_url = glance_database_url
        self.image_folder = glance.image_folder
        self.log_paths = {"keystone": keystone.log_path, "glance": glance.log_path}
        self.sessions = sessions
        self.project_ids = {user: session.get_project_id() for user, session in sessions.items()}

    def token(self, user):
        """A valid token of `user` (admin, demo, other), scoped to its project."""
        return self.sessions[user].get_token()

    def catalogue_settings(self):
        """The variables of an image catalogue taking v1 writes through this cloud: Keystone's
        tokens (checked as Glance's service user), Glance from the catalog, its database."""
        user, project, _ = GLANCE_USER
        keystone = {
            "WWW_AUTHENTICATE_URI": self.keystone_url,
            "AUTH_URL": self.keystone_url,
            "AUTH_TYPE": "password",
            "USERNAME": user,
            "PASSWORD": password(user),
            "PROJECT_NAME": project,
            "USER_DOMAIN_ID": "default",
            "PROJECT_DOMAIN_ID": "default",
        }
        return {
            "AUTH_STRATEGY": "keystone",
            **{f"KEYSTONE_AUTHTOKEN_{name}": value for name, value in keystone.items()},
            "GLANCE_DATABASE_URL": self.glance_database_url,
            "GLANCE_API_REGION_NAME": REGION,
        }

    def delete_images(self):
        """Delete every image, whoever owns it, so the next drill starts from an empty Glance."""
        admin, listing = self.sessions["admin"], f"{self.glance_url}/v2/images?visibility=all"
        while images := admin.get(listing).json()["images"]:
            for image in images:
                admin.delete(f"{self.glance_url}/v2/images/{image['id']}")

    def stop(self):
        self.glance.stop()
        self.keystone.stop()


def _session(keystone_url, user):
    """A keystoneauth1 session of `user` in its project; it renews the token when it expires."""
    auth = v3.Password(
        auth_url=keystone_url,
        username=user,
        password=password(user),
        user_domain_id="default",
        project_name=USERS[user][0],
        project_domain_id="default",
    )
    return ks_session.Session(auth=auth)


def _create_accounts(admin, keystone_url, glance_url):
    """Projects and users demo, other and Glance's; Glance's endpoints in the catalog."""

    def create(kind, **fields):
        return admin.post(f"{keystone_url}/{kind}s", json={kind: fields}).json()[kind]["id"]

    roles = admin.get(f"{keystone_url}/roles").json()["roles"]
    role_ids = {role["name"]: role["id"] for role in roles}
    new_accounts = [(user, *USERS[user]) for user in ("demo", "other")] + [GLANCE_USER]
    for user, project, role in new_accounts:
        project_id = create("project", name=project, domain_id="default")
        user_id = create(
            "user",
            name=user,
            password=password(user),
            domain_id="default",
            default_project_id=project_id,
        )
        admin.put(f"{keystone_url}/projects/{project_id}/users/{user_id}/roles/{role_ids[role]}")
    image_service = create("service", type="image", name="glance")
    for interface in ("public", "internal"):
        create(
            "endpoint",
            service_id=image_service,
            interface=interface,
            url=glance_url,
            region_id=REGION,
        )
    admin.invalidate()  # its token's catalog lacks Glance: the next one lists it


class Keystone:
    """Keystone's configuration, key repositories and log in `folder`, and its server."""

    def __init__(self, venv, folder):
        self.venv, self.folder = venv, folder
        folder.mkdir(mode=0o700)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.log_path = folder / "keystone.log"
        self.config_path = folder / "keystone.conf"
        self.server = None

    def setup_commands(self, database_url):
        """Write the configuration; return the commands that fill the database and key folders."""
        keys, credential_keys = self.folder / "fernet-keys", self.folder / "credential-keys"
        _write_config(
            self.config_path,
            {
                "DEFAULT": {"log_file": self.log_path},
                "database": {"connection": _psycopg2(database_url)},
                "fernet_tokens": {"key_repository": keys},
                "fernet_receipts": {"key_repository": keys},
                "credential": {"key_repository": credential_keys},
                # bcrypt's fewest rounds: each token issued for a password costs
                # a millisecond of hashing instead of a third of a second.
                "identity": {"password_hash_rounds": 4},
            },
        )
        owner = [
            *("--keystone-user", pwd.getpwuid(os.getuid()).pw_name),
            *("--keystone-group", grp.getgrgid(os.getgid()).gr_name),
        ]
        return [
            self._manage("db_sync"),
            self._manage("fernet_setup", *owner),
            self._manage("credential_setup", *owner),
        ]

    def bootstrap_command(self):
        """keystone-manage bootstrap: the admin, the roles, the region, Keystone's endpoints."""
        return self._manage(
            *("bootstrap", "--bootstrap-password", password("admin")),
            *("--bootstrap-region-id", REGION),
            *("--bootstrap-public-url", self.url),
            *("--bootstrap-internal-url", self.url),
        )

    def _manage(self, step, *arguments):
        # A log of its own: run side by side, the steps would mix their tails.
        log_path = self.folder / f"keystone-manage-{step}.log"
        command = [
            *(self.venv / "bin" / "keystone-manage", "--config-file", self.config_path),
            *("--log-file", log_path),
        ]
        return [*command, step, *arguments], log_path

    def start(self):
        self.server = _Server(
            self.venv,
            "keystone_wsgi:application",
            self.port,
            self.log_path,
            {"OS_KEYSTONE_CONFIG_FILES": str(self.config_path)},
            pythonpath=OPENSTACK_FILES,  # keystone_wsgi.py
        )

    def wait_until_serving(self):
        self.server.wait_until_answering(self.url)

    def stop(self):
        if self.server is not None:
            self.server.stop()


class Glance:
    """Glance's API: its configuration, image store, staging area and log in `folder`.

    The port, the database and the images stay the same across restarts.
    """

    def __init__(self, venv, folder, keystone_url):
        self.venv, self.folder, self.keystone_url = venv, folder, keystone_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "glance-api.log"
        self.config_path = folder / "glance-api.conf"
        self.image_folder = folder / "images"
        self.database_url = None
        self.server, self.options = None, {}
        folder.mkdir()
        for name in ("images", "staging", "tasks", "locks"):
            (folder / name).mkdir()

    def db_sync_command(self, database_url):
        """Write the configuration; return glance-manage db_sync."""
        self.database_url = database_url
        self._write_config()
        log_path = self.folder / "glance-manage.log"
        command = [
            *(self.venv / "bin" / "glance-manage", "--config-file", self.config_path),
            *("--log-file", log_path),
        ]
        return [*command, "db_sync"], log_path

    def start(
        self,
        *,
        image_size_cap=None,
        show_multiple_locations=False,
        require_image_format_match=True,
    ):
        """Serve the API with Glance's defaults but for these options; see wait_until_serving.

        image_size_cap: the largest upload, in bytes (None: Glance's 1 TiB).
        show_multiple_locations: Glance's deprecated option that shows an
        image's `locations` and lets PATCH change them.
        require_image_format_match: Glance refuses an upload (415) whose bytes
        are not of the image's disk_format (say, made-up bytes as qcow2).
        """
        self.options = {
            "image_size_cap": image_size_cap,
            "show_multiple_locations": show_multiple_locations,
            "require_image_format_match": require_image_format_match,
        }
        self._write_config(**self.options)
        self.server = _Server(
            self.venv,
            "glance.wsgi.api:application",
            self.port,
            self.log_path,
            {"OS_GLANCE_CONFIG_DIR": str(self.folder)},
        )

    def wait_until_serving(self):
        self.server.wait_until_answering(
            self.url + "/healthcheck", accept=lambda answer: answer.status_code == 200
        )

    def stop(self):
        """Stop the API (gunicorn's graceful stop: requests under way finish)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self, **options):
        """Stop, start with `options` (see start), and wait until it answers."""
        self.stop()
        self.start(**options)
        self.wait_until_serving()

    @contextlib.contextmanager
    def configured(self, **options):
        """Glance restarted with `options` (see start) for a `with` block, then with none."""
        self.restart(**options)
        try:
            yield
        finally:
            self.restart()

    @contextlib.contextmanager
    def down(self):
        """Glance's API stopped for a `with` block, then started as it was, and answering."""
        self.stop()
        try:
            yield
        finally:
            self.restart(**self.options)

    def _write_config(
        self, image_size_cap=None, show_multiple_locations=False, require_image_format_match=True
    ):
        settings = {
            "log_file": self.log_path,
            "enabled_backends": "fs:file, web:http",
            "enabled_import_methods": "[glance-direct,web-download]",
            "show_multiple_locations": show_multiple_locations,
        }
        if image_size_cap is not None:
            settings["image_size_cap"] = image_size_cap
        _write_config(
            self.config_path,
            {
                "DEFAULT": settings,
                "image_format": {"require_image_format_match": require_image_format_match},
                "database": {"connection": _psycopg2(self.database_url)},
                "glance_store": {"default_backend": "fs"},
                "fs": {"filesystem_store_datadir": self.image_folder},
                "os_glance_staging_store": {"filesystem_store_datadir": self.folder / "staging"},
                "os_glance_tasks_store": {"filesystem_store_datadir": self.folder / "tasks"},
                "paste_deploy": {
                    "flavor": "keystone",
                    "config_file": self.venv / "etc" / "glance" / "glance-api-paste.ini",
                },
                "keystone_authtoken": {
                    "www_authenticate_uri": self.keystone_url,
                    "auth_url": self.keystone_url,
                    "auth_type": "password",
                    "username": GLANCE_USER[0],
                    "password": password(GLANCE_USER[0]),
                    "user_domain_id": "default",
                    "project_name": GLANCE_USER[1],
                    "project_domain_id": "default",
                },
                # web-download and http locations may fetch from 127.0.0.1, on
                # any port: by default Glance refuses loopback, and ports but 80
                # and 443. These lists are written in brackets.
                "import_filtering_opts": {
                    "allowed_schemes": "[http]",
                    "allowed_hosts": "[127.0.0.1]",
                    "allowed_ports": "[]",
                },
                "oslo_concurrency": {"lock_path": self.folder / "locks"},
            },
        )


class _Server:
    """`app` of an OpenStack virtualenv under gunicorn on a loopback port.

    gunicorn's output is added to `log_path`, where the service logs too.
    """

    def __init__(self, venv, app, port, log_path, environment, pythonpath=None):
        self.log_path = log_path
        command = [
            venv / "bin" / "gunicorn",
            *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"),
            # gunicorn 25+ opens ~/.gunicorn/gunicorn.ctl, which servers would share.
            "--no-control-socket",
            *(("--pythonpath", str(pythonpath)) if pythonpath else ()),
            app,
        ]
        self.process = _spawn(command, log_path, environment)

    def wait_until_answering(self, url, **options):
        wait_until_answering(url, self.process, log_path=self.log_path, **options)

    def stop(self):
        stop(self.process)


def _run_together(commands):
    """Run (argv, log path) commands at once; raise with a log's tail if one fails."""
    processes = [(_spawn(argv, log_path), log_path) for argv, log_path in commands]
    try:
        for process, log_path in processes:
            try:
                process.wait(timeout=READY_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                raise ProcessFailed(f"{process.args[:3]} did not finish") from None
            if process.returncode != 0:
                check_alive(process, log_path)  # raises, with the end of the log
    finally:
        for process, _ in processes:
            stop(process)


def _spawn(command, log_path, environment=None):
    # The venvs are installed without bytecode (deploy/openstack_venvs.py):
    # these processes write it, once, even where the tests' Python may not.
    inherited = {
        name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
    }
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=log_path.parent,
            env={**inherited, **(environment or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _write_config(path, sections):
    config = configparser.ConfigParser(interpolation=None)
    config.read_dict(
        {
            name: {key: str(value) for key, value in values.items()}
            for name, values in sections.items()
        }
    )
    with path.open("w") as file:
        config.write(file)


def _psycopg2(database_url):
    # SQLAlchemy 2.1 takes postgresql:// for psycopg 3; the venvs have psycopg2.
    url = sa.make_url(database_url).set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)
