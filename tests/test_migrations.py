import flask_migrate
import sqlalchemy as sa

from app.extensions import db


def test_models_and_migrations_do_not_drift(app):
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_migrations_downgrade_and_upgrade_again(app):
    with app.app_context():
        flask_migrate.downgrade(revision="base")
        tables = sa.inspect(db.engine).get_table_names()
        assert "images" not in tables
        flask_migrate.upgrade()
        tables = sa.inspect(db.engine).get_table_names()
    assert {"images", "image_properties", "image_members", "api_tokens"} <= set(tables)
