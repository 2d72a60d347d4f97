"""The app's commands, `images` and `tokens` (app/__main__.py adds them to `image-catalogue`)."""

# Each module adds its commands to the groups.
from app.cli import check_plans, images, sources, sync_glance, tokens  # noqa: F401
from app.cli.group import images_cli, tokens_cli


def init_app(app):
    app.cli.add_command(images_cli)
    app.cli.add_command(tokens_cli)
