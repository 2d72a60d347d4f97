"""Every error is JSON: {"error": {"code", "title", "message"}}."""

import psycopg2
from flask import current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    ServiceUnavailable,
    default_exceptions,
)

from app.auth import IdentityUnavailable
from app.db import DatabaseUnavailable, db
from app.glance import gateway
from app.glance.translation import V1Invalid
from app.web.observability import DB_ERRORS, log_fields

# What a 503 asks clients to wait before they try again.
RETRY_AFTER_SECONDS = 1


# The methods Glance v1 wrote with: this catalogue answers them with a 405 naming
# where writes go (Allow lists what the path serves).
WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def init_app(app):
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(MethodNotAllowed, _method_not_allowed)
    app.register_error_handler(DatabaseUnavailable, _database_unavailable)
    app.register_error_handler(IdentityUnavailable, _identity_unavailable)
    app.register_error_handler(V1Invalid, _v1_refusal)
    app.register_error_handler(gateway.GlanceError, _glance_refusal)
    app.register_error_handler(gateway.GlanceUnavailable, _glance_unavailable)
    app.register_error_handler(gateway.NoImageService, _no_image_service)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected_error)


def error_response(error):
    """Render an HTTPException as the JSON error body, keeping its headers (Allow, ...)."""
    response = error.get_response()
    body = jsonify(error={"code": error.code, "title": error.name, "message": error.description})
    response.set_data(body.get_data())
    response.content_type = body.content_type
    return response


def _method_not_allowed(error):
    if request.method in WRITES and not current_app.config["WRITES"]:
        service = current_app.config["IMAGE_SERVICE_URL"]
        error.description = (
            "This image catalogue takes no writes: it carries them out in the cloud's Glance "
            "with the caller's Keystone token only with auth_strategy = keystone and "
            "[glance_mirror] connection set. Create, change and delete images and their "
            "members through the cloud's Image service (Glance)"
            + (f" at {service}." if service else ".")
        )
    return error_response(error)


def _v1_refusal(error):
    return _error(error.status, str(error))


def _glance_refusal(error):
    # Glance's 4xx stand as v1 answered them; its own failures are a bad gateway.
    return _error(error.status if error.status < 500 else 502, error.message)


def _glance_unavailable(error):
    current_app.logger.warning("Glance unavailable: %s", error, extra=log_fields())
    return _unavailable(str(error))


def _no_image_service(error):
    # The deployment's settings, not Glance's state: asking again changes nothing.
    current_app.logger.error("no Glance to write to: %s", error, extra=log_fields())
    return _error(500, str(error))


def _error(status, message):
    """The JSON error answer of `status`, saying `message`."""
    return error_response(default_exceptions.get(status, InternalServerError)(description=message))


def _database_error(error):
    # (The session's errors: the CLI's, and routes other than the read path.)
    # Refused, lost (InterfaceError: the connection was already closed) or
    # timed-out connections, and statements cancelled by statement_timeout,
    # are the database being unavailable; anything else is a bug.
    unavailable = isinstance(error, (OperationalError, InterfaceError))
    if unavailable or error.connection_invalidated:
        return _database_unavailable(error)
    return _unexpected_error(error)


def _database_unavailable(error):
    DB_ERRORS.labels("unavailable").inc()
    cause = getattr(error, "orig", error)
    current_app.logger.warning("database unavailable: %s", cause, extra=log_fields())
    _rollback()
    return _unavailable("The database is unavailable; try again shortly.")


def _identity_unavailable(error):
    return _unavailable("The identity service could not be reached; try again shortly.")


def _unavailable(description):
    return error_response(
        ServiceUnavailable(description=description, retry_after=RETRY_AFTER_SECONDS)
    )


def _unexpected_error(error):
    if isinstance(error, DBAPIError | psycopg2.Error):
        DB_ERRORS.labels("unexpected").inc()
    current_app.logger.error("unexpected error", exc_info=error, extra=log_fields())
    _rollback()
    return error_response(InternalServerError())


def _rollback():
    try:
        db.session.rollback()
    except SQLAlchemyError:
        current_app.logger.warning("rollback failed after a database error", extra=log_fields())
