"""`image-catalogue` (and `python -m app`): the one command for operators.

    image-catalogue [--config-file FILE] db upgrade | images ... | tokens ... |
                    serve | check-config | nginx-site ... | haproxy-config ... |
                    shipped-file NAME

`db`, `images` and `tokens` run with the service's app (the configuration
file, then the environment); the others need none.
"""

import importlib.metadata
import os

import click
from flask.cli import AppGroup, ScriptInfo
from flask_migrate.cli import db as db_cli

from app import create_app
from app.cli import images_cli, serving, tokens_cli
from app.config import one_line_exit


def _create_app():
    with one_line_exit():
        return create_app()


def _use_config_file(ctx, param, path):
    """--config-file names the file for this process and those it starts (gunicorn's workers)."""
    if path is not None:
        os.environ["IMAGE_CATALOGUE_CONFIG"] = path
    return path


cli = AppGroup(
    name="image-catalogue",
    help="The image catalogue: serve the Glance v1 API, migrate, load images, manage tokens.",
    params=[
        click.Option(
            ["--config-file"],
            type=click.Path(dir_okay=False),
            expose_value=False,
            is_eager=True,
            callback=_use_config_file,
            help="The configuration file (default: IMAGE_CATALOGUE_CONFIG, else "
            "/etc/image-catalogue/image-catalogue.conf if it exists).",
        )
    ],
)
cli = click.version_option(importlib.metadata.version("image-catalogue"))(cli)
for command in (db_cli, images_cli, tokens_cli, *serving.COMMANDS):
    cli.add_command(command)


def main():
    # The app is made when a command that needs it runs, never for --help.
    info = ScriptInfo(create_app=_create_app, set_debug_flag=False)
    cli.main(prog_name="image-catalogue", obj=info)


if __name__ == "__main__":
    main()
