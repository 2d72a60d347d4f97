"""How the service is served: gunicorn's settings, and nginx or HAProxy in front of it."""

import importlib.resources

from app import policy
from app.config import ConfigurationError, config_file, load
from app.config.checks import startup_problem

# gunicorn -c GUNICORN_SETTINGS (read by path: see the file's docstring).
GUNICORN_SETTINGS = importlib.resources.files(__package__) / "gunicorn_conf.py"
# The templates the proxies in front of gunicorn are rendered from.
TEMPLATES = importlib.resources.files(__package__) / "templates"


def address(host, port):
    """HOST:PORT as gunicorn binds it and a URL names it ([::1]:8080 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def fill(template, **values):
    """The template file `template` with each @NAME@ replaced by values[NAME]."""
    text = (TEMPLATES / template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def exit_on_startup_problem():
    """Exit with why this process's configuration cannot serve (status 1), or 0.

    gunicorn_conf.py runs it in a child process before any worker starts.
    """
    try:
        conf = load(config_file())
        problem = startup_problem(conf)
        if problem is None:
            policy.enforcer(conf)
    except ConfigurationError as error:
        problem = str(error)
    raise SystemExit(problem)
