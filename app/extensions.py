import flask_sqlalchemy
from flask import current_app
from flask_migrate import Migrate
from sqlalchemy.exc import SQLAlchemyError


class SQLAlchemy(flask_sqlalchemy.SQLAlchemy):
    def _teardown_session(self, exc):
        """Remove the request's session, whatever happened to its connection.

        If the database went away after the response was built, the rollback
        in session.remove() fails; letting that escape would turn the finished
        response into gunicorn's bare 500. The pool has already discarded the
        broken connection.
        """
        try:
            super()._teardown_session(exc)
        except SQLAlchemyError as error:
            current_app.logger.warning("could not end the session cleanly: %s", error)
            self.session.registry.clear()


db = SQLAlchemy()
migrate = Migrate()
