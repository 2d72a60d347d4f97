"""Alembic's migrations, installed as app.migrations (setup.cfg): found from the package, or
here beside app/ when a checkout runs in place (app/db/__init__.py)."""
