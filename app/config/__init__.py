"""One configuration for the service and every command: a file, then the environment.

The file is INI, as glance-api.conf is (sections per concern, the sample in
app/config/image-catalogue.conf.sample): IMAGE_CATALOGUE_CONFIG names it,
else /etc/image-catalogue/image-catalogue.conf when it exists, else there is
none. An environment variable (DATABASE_URL, KEYSTONE_AUTHTOKEN_<OPTION>, ...,
app/config/options.py) overrides the file; one left empty counts as unset.
[keystone_authtoken] and [oslo_policy] are read by keystonemiddleware and
oslo.policy themselves, from the same ConfigOpts.
"""

import contextlib
import os
import sys

from keystoneauth1 import exceptions as keystoneauth_errors
from keystoneauth1 import loading
from oslo_config import cfg
from oslo_policy import opts as policy_options

from app.config.options import (
    KEYSTONE,
    KEYSTONE_PREFIX,
    LIBRARY_VARIABLES,
    SETTINGS,
    option_groups,
)
from app.config.secrets import parse_problem, value_problem

PROJECT = "image-catalogue"
DEFAULT_CONFIG_FILE = "/etc/image-catalogue/image-catalogue.conf"
# Without a configuration file, the policy is looked for here only (never in
# a home folder, where oslo.policy would look next).
DEFAULT_POLICY_FILE = "/etc/image-catalogue/policy.yaml"


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


def config_file(environ=os.environ):
    """The configuration file to read, or None."""
    named = environ.get("IMAGE_CATALOGUE_CONFIG")
    if named:
        return named
    return DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None


def load(path=None, environ=os.environ):
    """A new ConfigOpts: the options' defaults, then the file at `path`, then `environ`.

    :raises ConfigurationError: the file is missing or not INI, or a variable's value is wrong.
    """
    conf = cfg.ConfigOpts()
    for section, options in option_groups():
        conf.register_opts(options, group=None if section == "DEFAULT" else section)
    set_library_defaults(conf)
    try:
        conf(
            args=[],
            project=PROJECT,
            prog=PROJECT,
            default_config_files=[path] if path else [],
            default_config_dirs=[],
            validate_default_values=True,
            use_env=False,
        )
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFilesPermissionDeniedError) as error:
        raise ConfigurationError(str(error)) from None
    except cfg.ConfigFileParseError as error:
        raise ConfigurationError(parse_problem(error.config_file)) from None
    _apply_environment(conf, environ)
    return conf


def settings(conf):
    """The app's settings (Flask config keys) from `conf`.

    :raises ConfigurationError: a value in the file is not valid for its option.
    """
    values = {setting.flask_key: _value(conf, setting) for setting in SETTINGS}
    values["TRUSTED_HOSTS"] = values["TRUSTED_HOSTS"] or None
    return values


def writes_enabled(values):
    """Whether v1 writes are carried out through Glance (app/images/writes.py): they need
    the caller's Keystone token, and the Glance mirror's database to apply the result from."""
    return values["AUTH_STRATEGY"] == "keystone" and bool(values["GLANCE_DATABASE_URL"])


def _value(conf, setting):
    section = conf if setting.section == "DEFAULT" else conf[setting.section]
    try:
        return section[setting.option.dest]
    except (cfg.Error, ValueError) as error:
        raise ConfigurationError(
            value_problem(conf, setting.section, setting.option.dest, error)
        ) from None


def _apply_environment(conf, environ):
    given = {name: value for name, value in environ.items() if value}
    for setting in SETTINGS:
        if setting.variable in given:
            _override(conf, setting.variable, setting.section, setting.option.dest, given)
    for variable, (section, name) in LIBRARY_VARIABLES.items():
        if variable in given:
            _override(conf, variable, section, name, given)
    # auth_type first, from the file or its variable: its plugin adds the options
    # (username, password, ...) the other variables may set.
    auth_type = KEYSTONE_PREFIX + "AUTH_TYPE"
    if auth_type in given:
        _override(conf, auth_type, KEYSTONE, "auth_type", given)
    register_auth_plugin(conf)
    for variable in sorted(given):
        if not variable.startswith(KEYSTONE_PREFIX) or variable == auth_type:
            continue
        name = variable.removeprefix(KEYSTONE_PREFIX).lower()
        try:
            _override(conf, variable, KEYSTONE, name, given)
        except cfg.NoSuchOptError:
            problem = unknown_auth_plugin(conf) or f"{variable} names no option of [{KEYSTONE}]"
            raise ConfigurationError(problem) from None


def _override(conf, variable, section, name, given):
    # A variable's value is taken as written: oslo.config would read $ as a reference.
    value = given[variable].replace("$", "$$")
    try:
        conf.set_override(name, value, group=None if section == "DEFAULT" else section)
    except ValueError as error:
        raise ConfigurationError(
            f"{variable}={given[variable]!r} is not valid for [{section}] {name}: {error}"
        ) from None


def unknown_auth_plugin(conf):
    """Why [keystone_authtoken] auth_type names no keystoneauth plugin, or None."""
    auth_type = conf[KEYSTONE].auth_type
    try:
        if auth_type:
            loading.get_plugin_loader(auth_type)
    except keystoneauth_errors.NoMatchingPlugin:
        return f"[{KEYSTONE}] auth_type names no keystoneauth plugin: {auth_type!r}"
    return None


def set_library_defaults(conf=None):
    """This service's defaults for options other libraries declare: the policy file's place.

    oslo-config-generator calls it too (setup.cfg), so the sample shows them.
    """
    policy_options.set_defaults(conf or cfg.ConfigOpts(), policy_file=DEFAULT_POLICY_FILE)


@contextlib.contextmanager
def one_line_exit():
    """Exit with `image-catalogue: <the problem>` (status 1) on a ConfigurationError."""
    try:
        yield
    except ConfigurationError as problem:
        sys.exit(f"image-catalogue: {problem}")


def register_auth_plugin(conf):
    """Add [keystone_authtoken]'s options of its auth_type's plugin (username, password, ...)."""
    auth_type = conf[KEYSTONE].auth_type
    if auth_type and not unknown_auth_plugin(conf):  # an unknown one is startup_problem's
        conf.register_opts(loading.get_auth_plugin_conf_options(auth_type), group=KEYSTONE)
