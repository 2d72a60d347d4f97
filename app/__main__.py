"""`image-catalogue` (and `python -m app`): the one command for operators.

    image-catalogue [--config-file FILE] db upgrade | images ... | tokens ... |
                    serve | check-config | nginx-site ... | shipped-file NAME

`db`, `images` and `tokens` run with the service's app (the configuration
file, then the environment); the others need none.
"""

import importlib.metadata
import os
import sys

import click
from flask.cli import FlaskGroup

from app.cli import serving
from app.config import ConfigurationError


def _create_app():
    from app import create_app

    try:
        return create_app()
    except ConfigurationError as problem:
        sys.exit(f"image-catalogue: {problem}")


def _use_config_file(ctx, param, path):
    """--config-file names the file for this process and those it starts (gunicorn's workers)."""
    if path is not None:
        os.environ["IMAGE_CATALOGUE_CONFIG"] = path
    return path


cli = FlaskGroup(
    name="image-catalogue",
    help=__doc__.splitlines()[0].split(": ", 1)[1],
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
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
for command in serving.COMMANDS:
    cli.add_command(command)


def main():
    cli.main(prog_name="image-catalogue")


if __name__ == "__main__":
    main()
