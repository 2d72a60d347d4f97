"""Alembic's migrations, installed as app.migrations (setup.cfg): found from the package."""
