"""How the service is served: gunicorn's settings and the nginx site in front of it."""

import importlib.resources

# gunicorn -c GUNICORN_SETTINGS (read by path: see the file's docstring).
GUNICORN_SETTINGS = importlib.resources.files(__package__) / "gunicorn_conf.py"
