"""Options that hold secrets, and configuration problems told without any part of one.

oslo.config quotes what it could not use: the rest of a value after a $ it
took for a reference to another option, a whole line without '='. In a
password, that is a piece of it, which every command would print and
gunicorn would log. These messages name the file, the line and the
option instead, and say what to write there.
"""

import functools
import os
import re
import stat

import sqlalchemy as sa
from keystoneauth1 import loading
from oslo_config import cfg
from oslo_policy import opts as policy_options

from app.config.lines import assigned, line_at, written_at
from app.config.options import EMBEDDED, KEYSTONE, SETTINGS, option_groups

# The service's own secrets are its database URLs, the password inside.
DATABASE_URLS = {
    (setting.section, setting.option.dest) for setting in SETTINGS if setting.option.secret
}


@functools.cache
def _declared():
    """{(section, name): secret?} of every option a file may set, whatever its auth_type.

    [keystone_authtoken] gets the options of every keystoneauth plugin, since
    the file may name any of them (or name one on a line that cannot be read).
    """
    plugins = [
        (KEYSTONE, loading.get_auth_plugin_conf_options(name))
        for name in loading.get_available_plugin_names()
    ]
    declared = {}
    for section, options in [*option_groups(), *policy_options.list_opts(), *plugins]:
        for option in options:
            key = section, option.dest
            declared[key] = declared.get(key, False) or option.secret
    return declared


def is_secret(section, name):
    """True if [section] name is declared secret=True (by this service or a library)."""
    return _declared().get((section, name), False)


def _secret_options():
    return sorted(key for key, secret in _declared().items() if secret)


def place(conf, section, name):
    """`FILE:LINE: ` where a file writes [section] name's value, or '' (a default, a variable)."""
    try:
        location = conf.get_location(name, None if section == "DEFAULT" else section)
    except (cfg.Error, ValueError):
        location = None  # only a file's value can fail: variables are taken as written
    if location is not None and location.location is not cfg.Locations.user:
        return ""
    found = written_at(conf.config_file, section, name)
    return f"{found[0]}:{found[1]}: " if found else ""


def value_problem(conf, section, name, error):
    """Why oslo.config cannot read [section] name, in one line, never quoting a secret's value."""
    secret = is_secret(section, name)
    if isinstance(error, (cfg.NoSuchOptError, cfg.TemplateSubstitutionError)):
        quoted = "" if secret else f" ({error})"
        reason = f"a $ there refers to another option{quoted}; write a $ as $$"
    elif secret:
        reason = "not a valid value (the value is not shown: it may hold a password)"
    else:
        reason = str(error).rsplit(" is not valid: ", 1)[-1]  # oslo.config's where, left out
    return f"{place(conf, section, name)}[{section}] {name}: {reason}"


def parse_problem(path):
    """Which line of the file at `path` oslo.config cannot parse, and what to write there."""
    try:
        cfg.ConfigParser(path, {}).parse()
    except cfg.ParseError as error:
        return line_problem(path, error.lineno, error.msg)
    return f"{path} could not be parsed, and now can: run the command again"


def line_problem(path, number, reason):
    """Line `number` of the file at `path` is no `name = value`: why, and what to write instead.

    The line is never quoted: it may be `password s3cret`, its = forgotten.
    Only the option it was meant to set is named, when its first word is one.
    """
    section, line = line_at(path, number)
    first_word = re.split(r"[\s:=]", line.strip(), maxsplit=1)[0]
    if line.startswith("["):
        option, fix = "", "`[section]`"
    elif (section, first_word) in _declared():
        option, fix = f"[{section}] {first_word}: ", f"`{first_word} = value`"
    else:
        option, fix = "", "`name = value`"
    return (
        f"{path}:{number}: {option}{reason}; write {fix} "
        "(the line is not shown: it may hold a password)"
    )


def secret_problem(conf):
    """The first secret option that cannot be read, or a database URL that cannot be parsed.

    In one line, never quoting the value; None if there is none.
    """
    for section, name in _secret_options():
        group = conf[section]
        if name not in group:
            continue  # another auth_type's
        try:
            value = group[name]
        except (cfg.Error, ValueError) as error:
            return value_problem(conf, section, name, error)
        if (section, name) in DATABASE_URLS and not all(map(_parses_as_url, _urls(value))):
            return _url_problem(conf, section, name, several=isinstance(value, list))
    return None


def _url_problem(conf, section, name, *, several=False):
    """[section] name holds a string that is no database URL: where, and how to write one."""
    comma = ", a comma as %2C" if several else ""
    return (
        f"{place(conf, section, name)}[{section}] {name}: not a database URL (the value is not "
        f"shown: it may hold a password); write scheme://user:password@host:port/dbname, "
        f"an @ in the password as %40{comma}"
    )


def _urls(value):
    """The URLs of a database URL option's value: a list's, a string's, none if unset."""
    urls = value if isinstance(value, list) else [value]
    return [url for url in urls if url and url != EMBEDDED]


def _parses_as_url(url):
    try:
        host = sa.make_url(url).host or ""
    except (sa.exc.ArgumentError, ValueError):  # ValueError: the port is no number
        return False
    # The part of a password after an @ written as it is would be taken for the host.
    return "@" not in host


def exposure_warnings(paths):
    """A warning for each file of `paths` every user may read that holds a secret option."""
    for path in paths:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        held = sorted(key for key in assigned(path) if is_secret(*key))
        if mode & stat.S_IROTH and held:
            options = ", ".join(f"[{section}] {name}" for section, name in held)
            yield (
                f"warning: {path} holds {options}, which every user may read "
                f"(mode {mode:04o}): chmod o-rwx {path}"
            )
