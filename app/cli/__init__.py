"""The command line: `flask --app wsgi images|tokens ...` (and Flask-Migrate's `db`)."""

from app.cli import glance  # noqa: F401  (adds images sync-glance)
from app.cli.images import images_cli
from app.cli.tokens import tokens_cli


def init_app(app):
    app.cli.add_command(images_cli)
    app.cli.add_command(tokens_cli)
